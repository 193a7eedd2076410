package flaredb

import (
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/shared/raftnode"
)

// TestRaftErrorInFlightIsUnknown (found by e2e/faults' isolate-leader):
// a proposal in flight when its region lost the leader for two election
// timeouts may still commit under the next leader, so the store must
// answer with an unknown outcome (DeadlineExceeded), not NotLeader: the
// client resends every request on NotLeader, and a CAS resent after its
// first copy committed fails on its own value, reporting "not swapped"
// for a swap that happened. A request never submitted for want of a
// leader stays NotLeader (safe to resend anywhere).
func TestRaftErrorInFlightIsUnknown(t *testing.T) {
	sv, r := &service{}, &region{id: 7}
	inFlight := fmt.Errorf("%w: shard 7 had no known leader for 2s while the proposal was in flight; outcome unknown, it may still commit: %w",
		raftnode.ErrNoLeader, raftnode.ErrTimeout)
	rerr, err := sv.raftError(r, inFlight)
	if rerr != nil || connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		t.Fatalf("in-flight proposal without leader: region error %v, error %v; want DeadlineExceeded (unknown outcome)", rerr, err)
	}
	notSubmitted := fmt.Errorf("%w: shard 7 has had no known leader for 2s; the proposal was not submitted", raftnode.ErrNoLeader)
	rerr, err = sv.raftError(r, notSubmitted)
	if err != nil || rerr.GetNotLeader().GetRegionId() != 7 {
		t.Fatalf("proposal not submitted: region error %v, error %v; want NotLeader of region 7", rerr, err)
	}
	rerr, err = sv.raftError(r, fmt.Errorf("proposal: %w", raftnode.ErrTimeout))
	if rerr != nil || !errors.As(err, new(*connect.Error)) || connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		t.Fatalf("timeout: region error %v, error %v; want DeadlineExceeded", rerr, err)
	}
}
