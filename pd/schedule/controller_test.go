package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
)

// applyCmd changes r as a leader applying cmd would, bumping conf_ver for
// membership changes.
func applyCmd(t *testing.T, r *Region, cmd *Command) *Region {
	t.Helper()
	n := clone(r)
	switch {
	case cmd == nil:
		t.Fatal("no command")
	case cmd.TransferLeader != nil:
		n.Leader = n.PeerOn(cmd.TransferLeader.Peer.GetStoreId())
		return n
	}
	cp := cmd.ChangePeer
	n.Meta.RegionEpoch.ConfVer++
	switch cp.ChangeType {
	case pdv1.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER_NODE:
		n.Meta.Peers = append(n.Meta.Peers, &metav1.Peer{Id: cp.Peer.Id, StoreId: cp.Peer.StoreId, Role: metav1.PeerRole_PEER_ROLE_LEARNER})
	case pdv1.ConfChangeType_CONF_CHANGE_TYPE_ADD_NODE_UNSPECIFIED:
		n.PeerOn(cp.Peer.StoreId).Role = metav1.PeerRole_PEER_ROLE_VOTER_UNSPECIFIED
	case pdv1.ConfChangeType_CONF_CHANGE_TYPE_REMOVE_NODE:
		var keep []*metav1.Peer
		for _, p := range n.Meta.Peers {
			if p.Id != cp.Peer.Id {
				keep = append(keep, p)
			}
		}
		n.Meta.Peers = keep
	}
	return n
}

// TestMoveLifecycle drives a move of the leader's peer through heartbeats:
// add learner (waits while pending), promote, transfer leader away from
// the peer to remove, remove; then SUCCESS in the history.
func TestMoveLifecycle(t *testing.T) {
	co, clk := newCoordinator(t)
	f := newFake(4)
	r := f.region(1, 1, 2, 3)
	c := co.Controller()
	cfg := f.cfg
	op := NewOperator("balance-region", "mv peer: store [1] to [4]", r, KindRegion, PriorityNormal, moveSteps(r.Meta.Peers[0], 4, 99)...)
	if err := c.Add(op, &cfg); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Operator(1); v.Status != StatusCreated {
		t.Fatalf("status %s, want CREATED", v.Status)
	}
	cmd, id := c.Dispatch(r)
	if cmd.ChangePeer.GetChangeType() != pdv1.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER_NODE || cmd.ChangePeer.Peer.GetId() != 99 || id != op.ID {
		t.Fatalf("first command %v (op %d), want add learner 99", cmd, id)
	}
	// Resent while the region does not show it.
	if again, _ := c.Dispatch(r); again == nil || again.ChangePeer.Peer.GetId() != 99 {
		t.Fatalf("step not resent: %v", again)
	}
	r = applyCmd(t, r, cmd)
	r.Pending = []*metav1.Peer{r.PeerOn(4)}
	if cmd, _ := c.Dispatch(r); cmd != nil {
		t.Fatalf("pending learner: got %v, want to wait", cmd)
	}
	r.Pending = nil
	cmd, _ = c.Dispatch(r)
	if cmd.ChangePeer.GetChangeType() != pdv1.ConfChangeType_CONF_CHANGE_TYPE_ADD_NODE_UNSPECIFIED {
		t.Fatalf("want promote, got %v", cmd)
	}
	r = applyCmd(t, r, cmd)
	cmd, _ = c.Dispatch(r)
	if cmd.TransferLeader == nil || cmd.TransferLeader.Peer.GetStoreId() == 1 {
		t.Fatalf("removing the leader's peer: want a transfer away from store 1 first, got %v", cmd)
	}
	r = applyCmd(t, r, cmd)
	cmd, _ = c.Dispatch(r)
	if cmd.ChangePeer.GetChangeType() != pdv1.ConfChangeType_CONF_CHANGE_TYPE_REMOVE_NODE || cmd.ChangePeer.Peer.GetStoreId() != 1 {
		t.Fatalf("want remove peer on store 1, got %v", cmd)
	}
	clk.Advance(time.Second)
	r = applyCmd(t, r, cmd)
	if cmd, _ := c.Dispatch(r); cmd != nil || c.Has(1) {
		t.Fatalf("operator should be done, got %v", cmd)
	}
	recs := c.Records(time.Time{})
	if len(recs) != 1 || recs[0].Status != StatusSuccess || !strings.HasSuffix(recs[0].String, " finished") {
		t.Fatalf("records %+v", recs)
	}
}

func TestOperatorEnds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(r *Region, clk *testClock)
		want   Status
	}{
		{"split cancels", func(r *Region, _ *testClock) { r.Meta.RegionEpoch.Version++ }, StatusCanceled},
		{"foreign conf change cancels", func(r *Region, _ *testClock) { r.Meta.RegionEpoch.ConfVer += 3 }, StatusCanceled},
		{"fast step times out after 60s", func(_ *Region, clk *testClock) { clk.Advance(61 * time.Second) }, StatusTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co, clk := newCoordinator(t)
			f := newFake(3)
			r := f.region(1, 1, 2, 3)
			c := co.Controller()
			if err := c.Add(transferOp("balance-leader", r, 1, 2, PriorityNormal), &f.cfg); err != nil {
				t.Fatal(err)
			}
			n := clone(r)
			tc.change(n, clk)
			if cmd, _ := c.Dispatch(n); cmd != nil {
				t.Fatalf("got %v, want the operator ended", cmd)
			}
			recs := c.Records(time.Time{})
			if len(recs) != 1 || recs[0].Status != tc.want {
				t.Fatalf("records %+v, want %s", recs, tc.want)
			}
		})
	}
}

// TestMoveCanceledByAnotherLearner: a move built from a stale view (PD
// reloaded a region record older than the region) adds a learner on a
// store that already got another learner; the region's conf_ver is one
// past the operator's and none of its steps shows, so it is canceled
// rather than resending an AddLearner the leader refuses for ever.
func TestMoveCanceledByAnotherLearner(t *testing.T) {
	co, _ := newCoordinator(t)
	f := newFake(4)
	r := f.region(1, 1, 2, 3)
	c := co.Controller()
	if err := c.Add(NewOperator("balance-region", "mv peer: store [2] to [4]", r, KindRegion, PriorityNormal, moveSteps(r.Meta.Peers[1], 4, 99)...), &f.cfg); err != nil {
		t.Fatal(err)
	}
	n := clone(r)
	n.Meta.RegionEpoch.ConfVer++
	n.Meta.Peers = append(n.Meta.Peers, &metav1.Peer{Id: 77, StoreId: 4, Role: metav1.PeerRole_PEER_ROLE_LEARNER})
	if cmd, _ := c.Dispatch(n); cmd != nil {
		t.Fatalf("got %v, want the operator canceled", cmd)
	}
	if recs := c.Records(time.Time{}); len(recs) != 1 || recs[0].Status != StatusCanceled {
		t.Fatalf("records %+v, want CANCELED", recs)
	}
}

func TestStepTimeoutScalesWithSize(t *testing.T) {
	for _, tc := range []struct {
		step Step
		size uint64
		want time.Duration
	}{
		{AddLearner{}, 10, 10 * time.Minute},
		{AddLearner{}, 120, 10*time.Minute + 100*time.Second},
		{PromoteLearner{}, 10, time.Minute},
		{RemovePeer{}, 1020, time.Minute + 100*time.Second},
		{TransferLeader{}, 20, time.Minute},
	} {
		if got := tc.step.timeout(tc.size); got != tc.want {
			t.Errorf("%T size %d: timeout %s, want %s", tc.step, tc.size, got, tc.want)
		}
	}
}

func TestControllerLimits(t *testing.T) {
	co, clk := newCoordinator(t)
	f := newFake(4)
	c := co.Controller()
	cfg := f.cfg
	cfg.LeaderScheduleLimit = 2
	cfg.StoreLimits = map[uint64]StoreLimit{4: {AddPeer: 2, RemovePeer: 15}}
	for i := uint64(1); i <= 2; i++ {
		if err := c.Add(transferOp("balance-leader", f.region(i, 1, 2, 3), 1, 2, PriorityNormal), &cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Add(transferOp("balance-leader", f.region(3, 1, 2, 3), 1, 2, PriorityNormal), &cfg); !errors.Is(err, ErrLimit) {
		t.Fatalf("third leader operator with leader-schedule-limit 2: %v, want ErrLimit", err)
	}
	add := func(id uint64) error {
		r := f.region(id, 1, 2, 3)
		r.Size = 100 // a full token per step; a small region costs 0.2
		return c.Add(NewOperator("balance-region", "", r, KindRegion, PriorityNormal, moveSteps(r.Meta.Peers[1], 4, 500+id)...), &cfg)
	}
	for id := uint64(10); id < 12; id++ {
		if err := add(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := add(12); !errors.Is(err, ErrLimit) {
		t.Fatalf("third add-peer on store 4 with limit 2/min: %v, want ErrLimit", err)
	}
	clk.Advance(30 * time.Second) // one token back
	if err := add(13); err != nil {
		t.Fatalf("after 30s at 2/min: %v", err)
	}
	clk.Advance(30 * time.Second) // one token: five small regions
	for id := uint64(20); id < 26; id++ {
		r := f.region(id, 1, 2, 3)
		err := c.Add(NewOperator("balance-region", "", r, KindRegion, PriorityNormal, moveSteps(r.Meta.Peers[1], 4, 500+id)...), &cfg)
		if (id < 25) != (err == nil) {
			t.Fatalf("small region %d: %v (the first five fit one token)", id, err)
		}
	}
	// An admin operator skips the limits and replaces a lower priority one.
	r := f.regions[0]
	admin := transferOp("admin-transfer-leader", r, 1, 3, PriorityAdmin)
	admin.Kind |= KindAdmin
	if err := c.Add(admin, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(transferOp("balance-leader", r, 1, 2, PriorityNormal), &cfg); !errors.Is(err, ErrRegionBusy) {
		t.Fatalf("lower priority over admin: %v, want ErrRegionBusy", err)
	}
	if recs := c.Records(time.Time{}); len(recs) != 1 || recs[0].Status != StatusReplaced {
		t.Fatalf("records %+v, want one REPLACED", recs)
	}
	if err := c.Remove(r.ID(), "admin"); err != nil || c.Has(r.ID()) {
		t.Fatalf("remove: %v", err)
	}
}

func TestHistoryBounded(t *testing.T) {
	co, _ := newCoordinator(t)
	f := newFake(3)
	c := co.Controller()
	r := f.region(1, 1, 2, 3)
	for range historySize + 10 {
		if err := c.Add(transferOp("x", r, 1, 2, PriorityNormal), &f.cfg); err != nil {
			t.Fatal(err)
		}
		if err := c.Remove(1, "test"); err != nil {
			t.Fatal(err)
		}
	}
	recs := c.Records(time.Time{})
	if len(recs) != historySize || recs[len(recs)-1].ID != historySize+10 || recs[0].ID != 11 {
		t.Fatalf("history: %d records, first %d last %d", len(recs), recs[0].ID, recs[len(recs)-1].ID)
	}
}

func TestOperatorString(t *testing.T) {
	co, _ := newCoordinator(t)
	f := newFake(4)
	r := f.region(7, 1, 2, 3)
	op := NewOperator("admin-transfer-peer", "mv peer: store [1] to [4]", r, KindAdmin|KindRegion, PriorityAdmin, moveSteps(r.Meta.Peers[0], 4, 9)...)
	if err := co.Controller().Add(op, &f.cfg); err != nil {
		t.Fatal(err)
	}
	got := op.String()
	for _, want := range []string{
		"admin-transfer-peer {mv peer: store [1] to [4]} (kind:admin,region, region:7(3, 5), createAt:2026-12-03 00:00:00 +0000 UTC",
		"steps:[0:{add learner peer 9 on store 4}, 1:{promote learner peer 9 on store 4 to voter}, 2:{remove peer on store 1}]",
		"timeout:[0:{10m0s}, 1:{1m0s}, 2:{1m0s}])",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("String() = %s\nmissing %s", got, want)
		}
	}
}
