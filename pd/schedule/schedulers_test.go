package schedule

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// execute plays the leaders: every region with an operator applies its
// commands until the operator ends or waits.
func execute(t *testing.T, co *Coordinator, f *fakeCluster) {
	t.Helper()
	for i, r := range f.regions {
		for range 10 {
			cmd, _ := co.Controller().Dispatch(r)
			if cmd == nil {
				break
			}
			r = applyCmd(t, r, cmd)
		}
		co.Controller().Progress(r)
		f.regions[i] = r
	}
}

// converge patrols and executes until no operator is left.
func converge(t *testing.T, co *Coordinator, clk *testClock, f *fakeCluster) int {
	t.Helper()
	rounds := 0
	for ; rounds < 500; rounds++ {
		patrol(t, co, f)
		if len(co.Controller().Operators()) == 0 {
			return rounds
		}
		execute(t, co, f)
		clk.Advance(10 * time.Second)
	}
	t.Fatalf("no convergence after %d rounds: %d operators left", rounds, len(co.Controller().Operators()))
	return rounds
}

func counts(f *fakeCluster) (peers, leaders map[uint64]int) {
	peers, leaders = map[uint64]int{}, map[uint64]int{}
	for _, r := range f.regions {
		for _, p := range r.Meta.Peers {
			peers[p.StoreId]++
		}
		leaders[r.Leader.GetStoreId()]++
	}
	return peers, leaders
}

// threeStoresPlusOne is 3 stores holding 40 regions (leaders all on store
// 1) and an empty store 4.
func threeStoresPlusOne() *fakeCluster {
	f := newFake(4)
	for id := uint64(1); id <= 40; id++ {
		f.region(id, 1, 2, 3)
	}
	f.cfg.Schedulers = []SchedulerSpec{{Name: BalanceRegionName}, {Name: BalanceLeaderName}}
	return f
}

// TestBalanceScaleOut: a new store gets its share of regions and leaders
// (the done-when: regions within 20% of the mean, leaders within
// 25%), and every region keeps 3 replicas on distinct stores.
func TestBalanceScaleOut(t *testing.T) {
	co, clk := newCoordinator(t)
	f := threeStoresPlusOne()
	rounds := converge(t, co, clk, f)
	peers, leaders := counts(f)
	t.Logf("after %d rounds: peers %v leaders %v", rounds, peers, leaders)
	for id := uint64(1); id <= 4; id++ {
		if p := float64(peers[id]); p < 30*0.8 || p > 30*1.2 {
			t.Errorf("store %d holds %v peers, want 30 +- 20%%", id, p)
		}
		if l := float64(leaders[id]); l < 10*0.75 || l > 10*1.25 {
			t.Errorf("store %d leads %v regions, want 10 +- 25%%", id, l)
		}
	}
	for _, r := range f.regions {
		seen := map[uint64]bool{}
		for _, p := range r.Meta.Peers {
			if seen[p.StoreId] || !isVoter(p) {
				t.Fatalf("region %d peers %v", r.ID(), r.Meta.Peers)
			}
			seen[p.StoreId] = true
		}
		if len(seen) != 3 {
			t.Fatalf("region %d has %d peers", r.ID(), len(seen))
		}
	}
	if recs := co.Controller().Records(time.Time{}); len(recs) == 0 {
		t.Fatal("no operator history")
	}
}

// TestBalanceRegionWeightAndTolerance: a store with region weight 2 ends
// with about twice the peers; a tolerant-size-ratio of 5 leaves a small
// gap alone.
func TestBalanceRegionWeightAndTolerance(t *testing.T) {
	t.Run("weight", func(t *testing.T) {
		co, clk := newCoordinator(t)
		f := threeStoresPlusOne()
		f.cfg.Schedulers = []SchedulerSpec{{Name: BalanceRegionName}}
		f.store(4).RegionWeight = 2
		converge(t, co, clk, f)
		peers, _ := counts(f)
		if peers[4] < 40 || peers[1] > 28 {
			t.Fatalf("peers %v: store 4 (weight 2) should hold about 2x the others", peers)
		}
	})
	t.Run("tolerance", func(t *testing.T) {
		co, _ := newCoordinator(t)
		f := newFake(4)
		f.cfg.Schedulers = []SchedulerSpec{{Name: BalanceRegionName}}
		f.cfg.TolerantSizeRatio = 5
		for id := uint64(1); id <= 4; id++ {
			f.region(id, 1, 2, 3) // stores 1-3: 40 MiB, store 4: 0
		}
		if ops := patrol(t, co, f); len(ops) != 0 {
			t.Fatalf("gap of 4 regions within a tolerance of 5: got %v", ops)
		}
		f.cfg.TolerantSizeRatio = 1
		// Stores 1 and 2 give one each; then store 3's 40 MiB against
		// store 4's 20 is within the tolerance.
		if ops := patrol(t, co, f); len(ops) != 2 {
			t.Fatalf("tolerance 1: want 2 moves, got %d", len(ops))
		}
	})
}

// TestSnapshotAndStoreLimits: max-snapshot-count caps the AddLearner steps
// in flight to a store; store limits cap add-peer per minute.
func TestSnapshotAndStoreLimits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   func(c *Config)
		want  int
		patro int
	}{
		{"max-snapshot-count 1", func(c *Config) { c.MaxSnapshotCount = 1 }, 1, 5},
		{"max-snapshot-count 4", func(c *Config) { c.MaxSnapshotCount = 4 }, 4, 5},
		{"store limit add-peer 0.6/min: 3 small regions", func(c *Config) { c.StoreLimits = map[uint64]StoreLimit{4: {AddPeer: 0.6, RemovePeer: 15}} }, 3, 10},
		{"region-schedule-limit 2", func(c *Config) { c.RegionScheduleLimit = 2 }, 2, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co, _ := newCoordinator(t)
			f := threeStoresPlusOne()
			f.cfg.Schedulers = []SchedulerSpec{{Name: BalanceRegionName}}
			tc.set(&f.cfg)
			for range tc.patro {
				patrol(t, co, f)
			}
			if n := len(co.Controller().Operators()); n != tc.want {
				t.Fatalf("%d operators in flight, want %d", n, tc.want)
			}
		})
	}
}

// TestBalanceRegionBatch: one patrol plans up to regionBatch moves onto a
// new store, so max-snapshot-count, not the patrol's pace, bounds the
// snapshots it receives at once (e2e observes 1 vs 4 in
// pd_store_snapshots_in_flight).
func TestBalanceRegionBatch(t *testing.T) {
	for _, limit := range []uint64{1, 2, 4, 64} {
		t.Run(fmt.Sprintf("max-snapshot-count %d", limit), func(t *testing.T) {
			co, _ := newCoordinator(t)
			f := threeStoresPlusOne()
			f.cfg.Schedulers = []SchedulerSpec{{Name: BalanceRegionName}}
			f.cfg.MaxSnapshotCount = limit
			patrol(t, co, f)
			want := min(int(limit), regionBatch)
			if got := co.Controller().influences()[4].receiving; got != want {
				t.Fatalf("store 4 receives %d snapshots after one patrol, want %d", got, want)
			}
		})
	}
}

func TestBalanceLeaderSizePolicy(t *testing.T) {
	co, clk := newCoordinator(t)
	f := newFake(3)
	f.cfg.Schedulers = []SchedulerSpec{{Name: BalanceLeaderName}}
	f.cfg.LeaderSchedulePolicy = "size"
	big := f.region(1, 1, 2, 3)
	big.Size = 300
	for id := uint64(2); id <= 7; id++ {
		f.region(id, 2, 1, 3)
	}
	converge(t, co, clk, f)
	_, leaders := counts(f)
	if leaders[1] != 1 {
		t.Fatalf("leaders %v: the 300 MiB region's store should keep only it", leaders)
	}
}

func TestEvictAndGrantLeader(t *testing.T) {
	t.Run("evict", func(t *testing.T) {
		co, clk := newCoordinator(t)
		f := newFake(3)
		for id := uint64(1); id <= 12; id++ {
			f.region(id, 1+id%3, 1+(id+1)%3, 1+(id+2)%3)
		}
		f.cfg.Schedulers = []SchedulerSpec{{Name: EvictLeaderName, StoreID: 2}, {Name: BalanceLeaderName}}
		converge(t, co, clk, f)
		if _, leaders := counts(f); leaders[2] != 0 || leaders[1]+leaders[3] != 12 {
			t.Fatalf("leaders %v: store 2 should lead nothing", leaders)
		}
	})
	t.Run("grant", func(t *testing.T) {
		co, clk := newCoordinator(t)
		f := newFake(4)
		for id := uint64(1); id <= 6; id++ {
			f.region(id, 1, 2, 3)
		}
		f.region(7, 1, 2, 4)
		f.cfg.Schedulers = []SchedulerSpec{{Name: GrantLeaderName, StoreID: 3}}
		converge(t, co, clk, f)
		if _, leaders := counts(f); leaders[3] != 6 || leaders[1] != 1 {
			t.Fatalf("leaders %v: store 3 should lead every region it holds", leaders)
		}
	})
}

func TestPauseScheduler(t *testing.T) {
	co, clk := newCoordinator(t)
	f := threeStoresPlusOne()
	co.Pause(BalanceRegionName, time.Minute)
	co.Pause(BalanceLeaderName, time.Minute)
	if ops := patrol(t, co, f); len(ops) != 0 {
		t.Fatalf("paused: %d operators", len(ops))
	}
	clk.Advance(61 * time.Second)
	if ops := patrol(t, co, f); len(ops) == 0 {
		t.Fatal("pause expired: want operators")
	}
}

func TestHaltScheduling(t *testing.T) {
	co, _ := newCoordinator(t)
	f := threeStoresPlusOne()
	f.cfg.HaltScheduling = true
	f.store(2).State = StateDown
	if ops := patrol(t, co, f); len(ops) != 0 {
		t.Fatalf("halt-scheduling: %d operators", len(ops))
	}
}

// TestOfflineDrain: every peer leaves an Offline store and regions keep 3
// voters.
func TestOfflineDrain(t *testing.T) {
	co, clk := newCoordinator(t)
	f := newFake(4)
	for id := uint64(1); id <= 20; id++ {
		f.region(id, 1+id%4, 1+(id+1)%4, 1+(id+2)%4)
	}
	f.store(2).State = StateOffline
	converge(t, co, clk, f)
	peers, _ := counts(f)
	if peers[2] != 0 {
		t.Fatalf("peers %v: store 2 is Offline and should be empty", peers)
	}
	for _, r := range f.regions {
		if len(r.voters()) != 3 {
			t.Fatalf("region %d: %v", r.ID(), r.Meta.Peers)
		}
	}
	var sb strings.Builder
	for _, v := range co.Controller().Records(time.Time{}) {
		if v.Status != StatusSuccess {
			sb.WriteString(v.String + "\n")
		}
	}
	if sb.Len() > 0 {
		t.Fatalf("unsuccessful operators:\n%s", sb.String())
	}
}
