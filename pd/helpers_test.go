package pd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type testNode struct {
	s     *Server
	kv    *view
	clock *fakeClock
	reg   *prometheus.Registry
}

func newTestNode(t *testing.T, kv *view, clock *fakeClock) *testNode {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(Config{
		KV:       kv,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: reg,
		Now:      clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &testNode{s: s, kv: kv, clock: clock, reg: reg}
}

func newLeader(t *testing.T) *testNode {
	return newTestNode(t, newMemKV().view(true), newFakeClock())
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func storeMeta(id uint64, addr string) *metav1.Store {
	return &metav1.Store{Id: id, Address: addr, Version: "centra-test", StartTimestamp: 1700000000}
}

// stats are a store's heartbeat statistics; the store claims a replica of
// every region the tests use (IDs below 100), so only peers a test makes
// pending are.
func stats(id uint64) *pdv1.StoreStats {
	var hosted []uint64
	for r := uint64(1); r < 100; r++ {
		hosted = append(hosted, r)
	}
	return &pdv1.StoreStats{StoreId: id, Capacity: 2 << 40, Available: 1 << 40, UsedSize: 96 << 20, StartTime: 1700000000, RegionIds: hosted}
}

// reportEmpty sends store id's heartbeat listing no region, then runs the
// Offline -> Tombstone check.
func (n *testNode) reportEmpty(t *testing.T, id uint64) {
	t.Helper()
	st := stats(id)
	st.RegionIds = nil
	if _, err := n.s.StoreHeartbeat(ctxT(t), st, nil); err != nil {
		t.Fatal(err)
	}
	if err := n.s.CheckStores(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// register registers stores 1..n at 10.0.0.i:2379 with a heartbeat.
func (n *testNode) register(t *testing.T, ids ...uint64) {
	t.Helper()
	for _, id := range ids {
		if _, err := n.s.StoreHeartbeat(ctxT(t), stats(id), storeMeta(id, addrOf(id))); err != nil {
			t.Fatalf("register store %d: %v", id, err)
		}
	}
}

func addrOf(id uint64) string { return fmt.Sprintf("10.0.0.%d:2379", id) }

// do runs one HTTP request against h and returns status and body.
func do(t *testing.T, h http.Handler, method, target, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func region(id uint64, start, end string, confVer, version uint64, stores ...uint64) *metav1.Region {
	r := &metav1.Region{Id: id, StartKey: []byte(start), EndKey: []byte(end), RegionEpoch: &metav1.RegionEpoch{ConfVer: confVer, Version: version}}
	for i, s := range stores {
		r.Peers = append(r.Peers, &metav1.Peer{Id: id*100 + uint64(i) + 1, StoreId: s})
	}
	return r
}

func heartbeat(r *metav1.Region, term uint64) *pdv1.RegionHeartbeatRequest {
	return &pdv1.RegionHeartbeatRequest{Region: r, Leader: r.Peers[0], Term: term, ApproximateSize: 10, ApproximateKeys: 1000}
}
