package schedule

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

// fakeCluster is an in-memory Cluster for table tests.
type fakeCluster struct {
	stores  []*Store
	regions []*Region
	cfg     Config
	nextID  uint64
}

func (f *fakeCluster) Stores() []*Store   { return f.stores }
func (f *fakeCluster) Regions() []*Region { return f.regions }
func (f *fakeCluster) Config() Config     { return f.cfg }
func (f *fakeCluster) AllocID(context.Context) (uint64, error) {
	f.nextID++
	return f.nextID, nil
}

func testConfig() Config {
	return Config{
		MaxReplicas: 3, LeaderScheduleLimit: 4, RegionScheduleLimit: 2048, ReplicaScheduleLimit: 64,
		MaxSnapshotCount: 64, MaxPendingPeerCount: 64, LeaderSchedulePolicy: "count", LowSpaceRatio: 0.8,
		EnableRemoveDownReplica: true, EnableReplaceOfflineRepl: true, EnableMakeUpReplica: true,
		EnableRemoveExtraReplica: true, EnableLocationReplacement: true, UnstartedPeerGrace: time.Minute,
	}
}

// newFake returns stores 1..n, Up, with 100 GiB free of 200 GiB.
func newFake(n int) *fakeCluster {
	f := &fakeCluster{cfg: testConfig(), nextID: 1000}
	for i := 1; i <= n; i++ {
		f.stores = append(f.stores, &Store{ID: uint64(i), State: StateUp, Capacity: 200 << 30, Available: 100 << 30, Labels: map[string]string{}})
	}
	return f
}

func (f *fakeCluster) store(id uint64) *Store {
	for _, s := range f.stores {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// region adds region id with voters on stores (peer ids id*10+i), led by
// the first, 10 MiB.
func (f *fakeCluster) region(id uint64, stores ...uint64) *Region {
	m := &metav1.Region{Id: id, RegionEpoch: &metav1.RegionEpoch{ConfVer: 5, Version: 3}}
	for i, s := range stores {
		m.Peers = append(m.Peers, &metav1.Peer{Id: id*10 + uint64(i), StoreId: s})
	}
	r := &Region{Meta: m, Size: 10}
	if len(m.Peers) > 0 {
		r.Leader = m.Peers[0]
	}
	f.regions = append(f.regions, r)
	return r
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newCoordinator(t *testing.T) (*Coordinator, *testClock) {
	t.Helper()
	clk := &testClock{t: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)}
	co, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return co, clk
}

// patrol runs one patrol and returns the live operators' strings by region.
func patrol(t *testing.T, co *Coordinator, f *fakeCluster) map[uint64]View {
	t.Helper()
	co.Patrol(context.Background(), f)
	out := map[uint64]View{}
	for _, v := range co.Controller().Operators() {
		out[v.RegionID] = v
	}
	return out
}

// clone copies a region so a test can change it as a heartbeat would.
func clone(r *Region) *Region {
	c := *r
	c.Meta = cloneMeta(r.Meta)
	return &c
}

func cloneMeta(m *metav1.Region) *metav1.Region {
	out := &metav1.Region{Id: m.Id, StartKey: m.StartKey, EndKey: m.EndKey,
		RegionEpoch: &metav1.RegionEpoch{ConfVer: m.GetRegionEpoch().GetConfVer(), Version: m.GetRegionEpoch().GetVersion()}}
	for _, p := range m.Peers {
		out.Peers = append(out.Peers, &metav1.Peer{Id: p.Id, StoreId: p.StoreId, Role: p.Role})
	}
	return out
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
