package schedule

import (
	"fmt"
	"time"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
)

// Step timeouts (TiKV's fast and slow step wait times) and how they grow
// with the region's size above smallRegionMiB.
const (
	fastStepTimeout = 60 * time.Second
	slowStepTimeout = 10 * time.Minute
	smallRegionMiB  = 20
	fastPerMiB      = 100 * time.Millisecond
	slowPerMiB      = time.Second
)

func stepTimeout(base, perMiB time.Duration, sizeMiB uint64) time.Duration {
	if sizeMiB <= smallRegionMiB {
		return base
	}
	return base + time.Duration(sizeMiB-smallRegionMiB)*perMiB
}

// Command is what a region leader is asked to do: one of ChangePeer,
// TransferLeader and SplitRegion.
type Command struct {
	ChangePeer     *pdv1.ChangePeer
	TransferLeader *pdv1.TransferLeader
	SplitRegion    *pdv1.SplitRegion
}

// Step is one step of an operator. PD learns that a step finished only
// from the region's later state.
type Step interface {
	fmt.Stringer
	// done reports whether the region shows the step finished.
	done(r *Region) bool
	// applied reports whether the step's change is visible but not
	// finished (a learner still catching up): PD waits, sends nothing.
	applied(r *Region) bool
	// command is what the leader must do now.
	command(r *Region) *Command
	// confChange reports whether the step changes membership (conf_ver+1).
	confChange() bool
	timeout(sizeMiB uint64) time.Duration
}

// AddLearner adds a learner with a new peer ID on a store; it catches up
// by a snapshot. It is finished when the learner runs and is not pending.
type AddLearner struct{ ToStore, PeerID uint64 }

func (s AddLearner) String() string {
	return fmt.Sprintf("add learner peer %d on store %d", s.PeerID, s.ToStore)
}

func (s AddLearner) applied(r *Region) bool {
	p := r.PeerOn(s.ToStore)
	return p != nil && p.GetId() == s.PeerID
}

func (s AddLearner) done(r *Region) bool { return s.applied(r) && !r.IsPending(s.PeerID) }

func (s AddLearner) command(*Region) *Command {
	return &Command{ChangePeer: &pdv1.ChangePeer{
		Peer:       &metav1.Peer{Id: s.PeerID, StoreId: s.ToStore, Role: metav1.PeerRole_PEER_ROLE_LEARNER},
		ChangeType: pdv1.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER_NODE,
	}}
}

func (AddLearner) confChange() bool { return true }

func (AddLearner) timeout(size uint64) time.Duration {
	return stepTimeout(slowStepTimeout, slowPerMiB, size)
}

// PromoteLearner makes a learner a voter.
type PromoteLearner struct{ ToStore, PeerID uint64 }

func (s PromoteLearner) String() string {
	return fmt.Sprintf("promote learner peer %d on store %d to voter", s.PeerID, s.ToStore)
}

func (s PromoteLearner) done(r *Region) bool {
	p := r.PeerOn(s.ToStore)
	return p != nil && p.GetId() == s.PeerID && isVoter(p)
}

func (PromoteLearner) applied(*Region) bool { return false }

func (s PromoteLearner) command(*Region) *Command {
	return &Command{ChangePeer: &pdv1.ChangePeer{
		Peer:       &metav1.Peer{Id: s.PeerID, StoreId: s.ToStore},
		ChangeType: pdv1.ConfChangeType_CONF_CHANGE_TYPE_ADD_NODE_UNSPECIFIED,
	}}
}

func (PromoteLearner) confChange() bool { return true }

func (PromoteLearner) timeout(size uint64) time.Duration {
	return stepTimeout(fastStepTimeout, fastPerMiB, size)
}

// RemovePeer removes the region's peer on a store. While that peer leads,
// the command is a leader transfer to another healthy voter instead: a
// leader is never asked to remove itself.
type RemovePeer struct{ FromStore, PeerID uint64 }

func (s RemovePeer) String() string { return fmt.Sprintf("remove peer on store %d", s.FromStore) }

func (s RemovePeer) done(r *Region) bool { return r.PeerOn(s.FromStore) == nil }

func (RemovePeer) applied(*Region) bool { return false }

func (s RemovePeer) command(r *Region) *Command {
	p := r.PeerOn(s.FromStore)
	if p == nil {
		return nil
	}
	if r.Leader.GetStoreId() == s.FromStore {
		to := healthyVoter(r, s.FromStore)
		if to == nil {
			return nil // nobody can take over yet: wait
		}
		return &Command{TransferLeader: &pdv1.TransferLeader{Peer: to}}
	}
	return &Command{ChangePeer: &pdv1.ChangePeer{Peer: p, ChangeType: pdv1.ConfChangeType_CONF_CHANGE_TYPE_REMOVE_NODE}}
}

// healthyVoter returns a voter of r, not on store except, neither pending
// nor down, or nil.
func healthyVoter(r *Region, except uint64) *metav1.Peer {
	for _, p := range r.voters() {
		if p.GetStoreId() != except && !r.IsPending(p.GetId()) && !r.IsDown(p.GetId()) {
			return p
		}
	}
	return nil
}

func (RemovePeer) confChange() bool { return true }

func (RemovePeer) timeout(size uint64) time.Duration {
	return stepTimeout(fastStepTimeout, fastPerMiB, size)
}

// TransferLeader hands the region's leadership to its peer on ToStore.
type TransferLeader struct{ FromStore, ToStore uint64 }

func (s TransferLeader) String() string {
	return fmt.Sprintf("transfer leader from store %d to store %d", s.FromStore, s.ToStore)
}

func (s TransferLeader) done(r *Region) bool { return r.Leader.GetStoreId() == s.ToStore }

func (TransferLeader) applied(*Region) bool { return false }

func (s TransferLeader) command(r *Region) *Command {
	p := r.PeerOn(s.ToStore)
	if p == nil {
		return nil
	}
	return &Command{TransferLeader: &pdv1.TransferLeader{Peer: p}}
}

func (TransferLeader) confChange() bool { return false }

func (TransferLeader) timeout(size uint64) time.Duration {
	return stepTimeout(fastStepTimeout, fastPerMiB, size)
}

// SplitRegion splits the region at Key (empty: where it halves the
// region's data). It is finished when the region's version moved past
// FromVersion, the version the operator was built for; the region keeps
// its ID on the left side of the split. It must be an operator's last
// step: a split makes every later step stale.
type SplitRegion struct {
	FromVersion uint64
	Key         []byte
}

func (s SplitRegion) String() string {
	if len(s.Key) == 0 {
		return "split region halfway"
	}
	return fmt.Sprintf("split region at key %X", s.Key)
}

func (s SplitRegion) done(r *Region) bool { return r.Epoch().GetVersion() > s.FromVersion }

func (SplitRegion) applied(*Region) bool { return false }

func (s SplitRegion) command(*Region) *Command {
	sp := &pdv1.SplitRegion{Policy: pdv1.SplitPolicy_SPLIT_POLICY_HALFWAY_UNSPECIFIED}
	if len(s.Key) > 0 {
		sp.Policy, sp.Keys = pdv1.SplitPolicy_SPLIT_POLICY_USE_KEY, [][]byte{s.Key}
	}
	return &Command{SplitRegion: sp}
}

func (SplitRegion) confChange() bool { return false }

func (SplitRegion) timeout(size uint64) time.Duration {
	return stepTimeout(fastStepTimeout, fastPerMiB, size)
}
