package schedule

import (
	"strings"
	"testing"
	"time"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
)

func TestReplicaChecker(t *testing.T) {
	learner := metav1.PeerRole_PEER_ROLE_LEARNER
	for _, tc := range []struct {
		name   string
		setup  func(f *fakeCluster) *Region
		advise time.Duration // clock advance between two patrols
		want   string        // substring of the operator's String, "" for none
		fail   string        // substring of the logged failure
	}{
		{name: "healthy region: nothing", setup: func(f *fakeCluster) *Region { return f.region(1, 1, 2, 3) }},
		{name: "down store: replace on the emptiest store", setup: func(f *fakeCluster) *Region {
			f.store(3).State = StateDown
			f.stores = append(f.stores, &Store{ID: 5, State: StateUp})
			f.region(2, 1, 2, 5) // store 5 holds more
			return f.region(1, 1, 2, 3)
		}, want: "replace-down-replica {mv peer: store [3] to [4]}"},
		{name: "disconnected store: wait", setup: func(f *fakeCluster) *Region {
			f.store(3).State = StateDisconnected
			return f.region(1, 1, 2, 3)
		}},
		{name: "offline store: replace", setup: func(f *fakeCluster) *Region {
			f.store(2).State = StateOffline
			return f.region(1, 1, 2, 3)
		}, want: "replace-offline-replica {mv peer: store [2] to [4]}"},
		{name: "tombstone store: replace", setup: func(f *fakeCluster) *Region {
			f.store(2).State = StateTombstone
			return f.region(1, 1, 2, 3)
		}, want: "replace-offline-replica"},
		{name: "down store with an extra voter: just remove", setup: func(f *fakeCluster) *Region {
			f.store(4).State = StateDown
			return f.region(1, 1, 2, 3, 4)
		}, want: "remove-down-replica {rm peer: store [4]}"},
		{name: "too few: add learner and promote", setup: func(f *fakeCluster) *Region {
			return f.region(1, 1, 2)
		}, want: "make-up-replica {add peer: store [3]} (kind:region,replica"},
		{name: "too many: remove a follower", setup: func(f *fakeCluster) *Region {
			f.region(2, 4)
			return f.region(1, 1, 2, 3, 4)
		}, want: "remove-extra-replica {rm peer: store [4]}"},
		{name: "caught-up learner: promote", setup: func(f *fakeCluster) *Region {
			r := f.region(1, 1, 2, 3)
			r.Meta.Peers[2].Role = learner
			return r
		}, want: "promote-learner {promote peer: store [3]}"},
		{name: "pending learner: wait", setup: func(f *fakeCluster) *Region {
			r := f.region(1, 1, 2, 3)
			r.Meta.Peers[2].Role = learner
			r.Pending = []*metav1.Peer{r.Meta.Peers[2]}
			return r
		}},
		{name: "extra learner: remove", setup: func(f *fakeCluster) *Region {
			r := f.region(1, 1, 2, 3, 4)
			r.Meta.Peers[3].Role = learner
			return r
		}, want: "remove-extra-learner {rm peer: store [4]}"},
		{name: "down voter, caught-up learner, no free store: promote the learner, remove the down voter", setup: func(f *fakeCluster) *Region {
			f.store(3).State = StateDown
			r := f.region(1, 1, 2, 3, 4)
			r.Meta.Peers[3].Role = learner
			return r
		}, want: "replace-down-replica {mv peer: store [3] to [4]}"},
		{name: "no store left: failure logged", setup: func(f *fakeCluster) *Region {
			f.store(4).State = StateDown
			f.store(3).State = StateDown
			return f.region(1, 1, 2, 3)
		}, fail: "no Up store without a peer of the region"},
		{name: "target full of snapshots: failure names the limit", setup: func(f *fakeCluster) *Region {
			f.store(3).State = StateDown
			f.store(4).ReceivingSnaps = 64
			return f.region(1, 1, 2, 3)
		}, fail: "store 4 receives 64 snapshots (max-snapshot-count 64)"},
		{name: "leader's store full of snapshots: failure names the limit", setup: func(f *fakeCluster) *Region {
			f.store(3).State = StateDown
			f.store(1).SendingSnaps = 64
			return f.region(1, 1, 2, 3)
		}, fail: "store 1 sends 64 snapshots (max-snapshot-count 64)"},
		{name: "target with too many pending peers", setup: func(f *fakeCluster) *Region {
			f.cfg.MaxPendingPeerCount = 1
			f.store(3).State = StateDown
			p := f.region(2, 4, 1, 2)
			p.Pending = []*metav1.Peer{p.Meta.Peers[0]}
			return f.region(1, 1, 2, 3)
		}, fail: "store 4 has 1 pending peers (max-pending-peer-count 1)"},
		{name: "unstarted peer within grace: wait", setup: func(f *fakeCluster) *Region {
			r := f.region(1, 1, 2, 3)
			r.Unstarted = []*metav1.Peer{r.Meta.Peers[2]}
			r.Pending = r.Unstarted
			return r
		}, advise: 30 * time.Second},
		{name: "unstarted peer past grace, others healthy: remove first, rebuild on the same store", setup: func(f *fakeCluster) *Region {
			f.store(4).State = StateOffline
			r := f.region(1, 1, 2, 3)
			r.Unstarted = []*metav1.Peer{r.Meta.Peers[2]}
			r.Pending = r.Unstarted
			return r
		}, advise: 61 * time.Second, want: "repair-unstarted-replica {rebuild peer: store [3] to [3]}"},
		{name: "unstarted peer, another voter down: add elsewhere first", setup: func(f *fakeCluster) *Region {
			r := f.region(1, 1, 2, 3)
			r.Unstarted = []*metav1.Peer{r.Meta.Peers[2]}
			r.Pending = r.Unstarted
			r.Down = []*pdv1.PeerStats{{Peer: r.Meta.Peers[1], DownSeconds: 10}}
			return r
		}, advise: 61 * time.Second, want: "repair-unstarted-replica {mv peer: store [3] to [4]}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co, clk := newCoordinator(t)
			var logs strings.Builder
			co.log = slogTo(&logs)
			f := newFake(4)
			r := tc.setup(f)
			patrol(t, co, f)
			clk.Advance(tc.advise)
			ops := patrol(t, co, f)
			got := ops[r.ID()].String
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Fatalf("operator %q, want %q", got, tc.want)
			}
			if tc.fail != "" && !strings.Contains(logs.String(), "failed to schedule operator") || !strings.Contains(logs.String(), tc.fail) {
				t.Fatalf("log %q, want a failure with %q", logs.String(), tc.fail)
			}
		})
	}
}

// TestRepairUnstartedSteps checks the order of a remove-first repair.
func TestRepairUnstartedSteps(t *testing.T) {
	co, clk := newCoordinator(t)
	f := newFake(3)
	r := f.region(1, 1, 2, 3)
	r.Unstarted = []*metav1.Peer{r.Meta.Peers[2]}
	r.Pending = r.Unstarted
	patrol(t, co, f)
	clk.Advance(2 * time.Minute)
	v := patrol(t, co, f)[1]
	want := []string{"remove peer on store 3", "add learner peer 1001 on store 3", "promote learner peer 1001 on store 3 to voter"}
	if strings.Join(v.Steps, "|") != strings.Join(want, "|") {
		t.Fatalf("steps %q, want %q", v.Steps, want)
	}
}

// TestLabelIsolation: replicas spread over zones; with isolation-level
// zone a store in a zone that already has a peer is never a target.
func TestLabelIsolation(t *testing.T) {
	zones := map[uint64]string{1: "a", 2: "b", 3: "c", 4: "a", 5: "b", 6: "c"}
	for _, tc := range []struct {
		name      string
		down      []uint64
		isolation string
		want      string
		fail      string
	}{
		{name: "replacement stays in the lost zone", down: []uint64{3}, want: "mv peer: store [3] to [6]"},
		{name: "isolation-level zone: no store in the right zone", down: []uint64{3, 6}, isolation: "zone", fail: "shares zone with a peer (isolation-level)"},
		{name: "no isolation level: best effort into a shared zone", down: []uint64{3, 6}, want: "mv peer: store [3] to ["},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co, _ := newCoordinator(t)
			var logs strings.Builder
			co.log = slogTo(&logs)
			f := newFake(6)
			f.cfg.LocationLabels = []string{"zone", "host"}
			f.cfg.IsolationLevel = tc.isolation
			for _, s := range f.stores {
				s.Labels = map[string]string{"zone": zones[s.ID], "host": "h" + string(rune('0'+s.ID))}
			}
			for _, d := range tc.down {
				f.store(d).State = StateDown
			}
			f.region(1, 1, 2, 3)
			got := patrol(t, co, f)[1].String
			if tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("operator %q, want %q", got, tc.want)
			}
			if tc.fail != "" && (got != "" || !strings.Contains(logs.String(), tc.fail)) {
				t.Fatalf("operator %q, log %q: want no operator and %q", got, logs.String(), tc.fail)
			}
		})
	}
}

// TestBetterLocation moves a replica out of a zone that holds two.
func TestBetterLocation(t *testing.T) {
	co, _ := newCoordinator(t)
	f := newFake(4)
	f.cfg.LocationLabels = []string{"zone"}
	for id, z := range map[uint64]string{1: "a", 2: "a", 3: "b", 4: "c"} {
		f.store(id).Labels = map[string]string{"zone": z}
	}
	f.region(1, 1, 2, 3)
	got := patrol(t, co, f)[1].String
	if !strings.Contains(got, "move-to-better-location") || !strings.Contains(got, "to [4]") {
		t.Fatalf("operator %q, want a move to store 4 (zone c)", got)
	}
}

func TestDistinctScore(t *testing.T) {
	st := func(id uint64, zone, host string) *Store {
		return &Store{ID: id, Labels: map[string]string{"zone": zone, "host": host}}
	}
	labels := []string{"zone", "host"}
	others := []*Store{st(1, "a", "h1"), st(2, "b", "h2")}
	for _, tc := range []struct {
		s    *Store
		want float64
	}{
		{st(3, "c", "h3"), 200}, // differs at zone from both
		{st(3, "a", "h3"), 101}, // host from 1, zone from 2
		{st(3, "a", "h1"), 100}, // same as 1
	} {
		if got := distinctScore(labels, others, tc.s); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.s.Labels, got, tc.want)
		}
	}
}

func TestReplicaLimit(t *testing.T) {
	co, _ := newCoordinator(t)
	f := newFake(4)
	f.cfg.ReplicaScheduleLimit = 2
	f.store(3).State = StateDown
	for id := uint64(1); id <= 5; id++ {
		f.region(id, 1, 2, 3)
	}
	if n := len(patrol(t, co, f)); n != 2 {
		t.Fatalf("%d operators with replica-schedule-limit 2", n)
	}
}

// TestFailureLogOncePerReason: a dead store behind many regions logs one
// line a minute, not one per region.
func TestFailureLogOncePerReason(t *testing.T) {
	co, clk := newCoordinator(t)
	var logs strings.Builder
	co.log = slogTo(&logs)
	f := newFake(3)
	f.store(3).State = StateDown
	for id := uint64(1); id <= 20; id++ {
		f.region(id, 1, 2, 3)
	}
	patrol(t, co, f)
	patrol(t, co, f)
	if n := strings.Count(logs.String(), "failed to schedule operator"); n != 1 {
		t.Fatalf("%d failure lines, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "replace-down-replica of a peer on store 3: no Up store without a peer of the region") {
		t.Fatalf("log: %s", logs.String())
	}
	clk.Advance(time.Minute)
	patrol(t, co, f)
	if n := strings.Count(logs.String(), "failed to schedule operator"); n != 2 {
		t.Fatalf("after a minute: %d failure lines, want 2", n)
	}
}

// TestRepairReplacesBalance: a balance operator stuck behind a dead voter
// is replaced by the repair; one whose region is only mid-move is not.
func TestRepairReplacesBalance(t *testing.T) {
	co, _ := newCoordinator(t)
	f := newFake(5)
	r := f.region(1, 1, 2, 3)
	c := co.Controller()
	bal := NewOperator("balance-region", "", r, KindRegion, PriorityNormal, moveSteps(r.Meta.Peers[0], 4, 99)...)
	if err := c.Add(bal, &f.cfg); err != nil {
		t.Fatal(err)
	}
	// Mid-move: a learner on store 4 catching up, nothing lost.
	cmd, _ := c.Dispatch(r)
	moved := applyCmd(t, r, cmd)
	moved.Pending = []*metav1.Peer{moved.PeerOn(4)}
	moved.Unstarted = moved.Pending
	f.regions[0] = moved
	if v := patrol(t, co, f)[1]; v.Desc != "balance-region" {
		t.Fatalf("mid-move region: operator %q, want the balance one kept", v.String)
	}
	f.store(2).State = StateDown
	if v := patrol(t, co, f)[1]; v.Desc != descReplaceDown || !strings.Contains(v.String, "to [5]") {
		t.Fatalf("dead voter: operator %q, want replace-down-replica to store 5", v.String)
	}
	if recs := c.Records(time.Time{}); len(recs) != 1 || recs[0].Status != StatusReplaced {
		t.Fatalf("records %+v, want the balance operator REPLACED", recs)
	}
}

// TestLearnerTakesLostVotersPlace: a move cut short left a caught-up
// learner; a voter dies: the learner is promoted in its place, and an
// operator adding a second peer on the learner's store is canceled.
func TestLearnerTakesLostVotersPlace(t *testing.T) {
	co, _ := newCoordinator(t)
	f := newFake(4)
	r := f.region(1, 1, 2, 3, 4)
	r.Meta.Peers[3].Role = metav1.PeerRole_PEER_ROLE_LEARNER
	c := co.Controller()
	stale := NewOperator(descReplaceDown, "", r, replicaKind, PriorityHigh, AddLearner{ToStore: 4, PeerID: 77}, PromoteLearner{ToStore: 4, PeerID: 77})
	if err := c.Add(stale, &f.cfg); err != nil {
		t.Fatal(err)
	}
	if cmd, _ := c.Dispatch(r); cmd != nil {
		t.Fatalf("add learner on a store holding a peer: got %v, want the operator canceled", cmd)
	}
	if recs := c.Records(time.Time{}); len(recs) != 1 || recs[0].Status != StatusCanceled || !strings.Contains(recs[0].Reason, "store 4 already holds peer 13") {
		t.Fatalf("records %+v", recs)
	}
	f.store(2).State = StateDown
	v := patrol(t, co, f)[1]
	if v.Desc != descReplaceDown || strings.Join(v.Steps, "|") != "promote learner peer 13 on store 4 to voter|remove peer on store 2" {
		t.Fatalf("operator %s, want the learner on store 4 promoted in place of store 2", v.String)
	}
}
