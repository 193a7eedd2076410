package pd

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/gen/centra/pd/v1/pdv1connect"
	pdclient "github.com/centra-cloud/centra/pd/client"
)

// serveConnect serves the node's PDService over HTTP/1.1 and h2c.
func serveConnect(t *testing.T, n *testNode) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(n.s.ConnectHandler())
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func h2cClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestConnectFollowerNamesLeaderAndClientFollows(t *testing.T) {
	mem := newMemKV()
	clock := newFakeClock()
	leader := newTestNode(t, mem.view(true), clock)
	follower := newTestNode(t, mem.view(false), clock)
	ls, fs := serveConnect(t, leader), serveConnect(t, follower)
	mem.leaderURL.Store(ls.URL)
	hc := h2cClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A follower refuses with Unavailable naming the leader.
	direct := pdv1connect.NewPDServiceClient(hc, fs.URL)
	_, err := direct.AllocID(ctx, connect.NewRequest(&pdv1.AllocIDRequest{Count: 1}))
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "not leader; leader is "+ls.URL) {
		t.Fatalf("follower err = %v", err)
	}

	c, err := pdclient.New(strings.TrimPrefix(fs.URL, "http://")+","+ls.URL, pdclient.WithHTTPClient(hc), pdclient.WithBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.PutStore(ctx, storeMeta(4, "10.0.0.4:2379"))
	if err != nil || st.GetNodeState() != metav1.NodeState_NODE_STATE_SERVING {
		t.Fatalf("PutStore = %v %v", st, err)
	}
	if c.Leader() != ls.URL {
		t.Fatalf("client leader = %q, want %q", c.Leader(), ls.URL)
	}
	_, err = c.PutStore(ctx, storeMeta(4, "10.0.0.9:2379"))
	if connect.CodeOf(err) != connect.CodeAlreadyExists || !strings.Contains(err.Error(), "10.0.0.4:2379") || !strings.Contains(err.Error(), "10.0.0.9:2379") {
		t.Fatalf("duplicate err = %v", err)
	}
	if _, err := c.StoreHeartbeat(ctx, stats(4), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StoreHeartbeat(ctx, stats(8), nil); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unregistered heartbeat err = %v", err)
	}
	first, err := c.AllocID(ctx, 10)
	if err != nil || first == 0 {
		t.Fatalf("AllocID = %d %v", first, err)
	}
	second, err := c.AllocID(ctx, 1)
	if err != nil || second != first+10 {
		t.Fatalf("second AllocID = %d %v, want %d", second, err, first+10)
	}
	stores, err := c.GetAllStores(ctx, true)
	if err != nil || len(stores) != 1 || stores[0].GetStateName() != StateUp {
		t.Fatalf("GetAllStores = %v %v", stores, err)
	}

	// Region heartbeats over the stream; a stale one is flagged.
	stream, err := c.RegionHeartbeat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, hb := range []*pdv1.RegionHeartbeatRequest{
		heartbeat(region(7, "", "", 1, 2, 4), 1),
		heartbeat(region(7, "", "", 1, 1, 4), 1),
	} {
		if err := stream.Send(hb); err != nil {
			t.Fatal(err)
		}
	}
	r1, err := stream.Receive()
	if err != nil || r1.GetStale() || r1.GetRegionId() != 7 {
		t.Fatalf("first response = %v %v", r1, err)
	}
	r2, err := stream.Receive()
	if err != nil || !r2.GetStale() {
		t.Fatalf("second response = %v %v, want stale", r2, err)
	}
	if err := stream.Close(); err != nil {
		t.Fatal(err)
	}
	r, l, err := c.GetRegion(ctx, []byte("any"))
	if err != nil || r.GetId() != 7 || l.GetStoreId() != 4 {
		t.Fatalf("GetRegion = %v %v %v", r, l, err)
	}
	newID, peers, err := c.AskSplit(ctx, r)
	if err != nil || newID == 0 || len(peers) != 1 {
		t.Fatalf("AskSplit = %d %v %v", newID, peers, err)
	}
	if r, _, err := c.GetRegionByID(ctx, 99); err != nil || r != nil {
		t.Fatalf("unknown region = %v %v", r, err)
	}

	// Leadership moves: the client follows the new hint.
	leader.kv.setLeader(false)
	follower.kv.setLeader(true)
	mem.leaderURL.Store(fs.URL)
	if _, err := c.StoreHeartbeat(ctx, stats(4), nil); err != nil {
		t.Fatalf("after leader change: %v", err)
	}
	if c.Leader() != fs.URL {
		t.Fatalf("client leader = %q, want %q", c.Leader(), fs.URL)
	}
	// A short deadline with no leader anywhere ends the retries.
	follower.kv.setLeader(false)
	mem.leaderURL.Store("")
	sctx, scancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer scancel()
	if _, err := c.AllocID(sctx, 1); err == nil {
		t.Fatal("AllocID without a leader succeeded")
	}
}

func TestMetrics(t *testing.T) {
	n := fixture(t) // stores 1, 2 Up, 3 Disconnected; one region
	got := gather(t, n.reg)
	for k, want := range map[string]float64{
		"flaredb_store_state{store_id=1}":     1,
		"flaredb_store_state{store_id=3}":     0,
		"pd_store_count{state=Up}":            2,
		"pd_store_count{state=Disconnected}":  1,
		"pd_region_count":                     1,
		"pd_store_heartbeat_total{result=ok}": 5,
		"pd_store_heartbeat_duration_seconds": 5,
		"flaredb_pending_peers_total":         2, // the learner on silent store 3, the peer its leader reports down
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
}

// gather returns every metric of reg as name{label=value}... -> value
// (histograms: their sample count).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				got[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return got
}

// TestFollowerExportsStoreState: a follower asks the leader for the store
// states at scrape time.
func TestFollowerExportsStoreState(t *testing.T) {
	mem := newMemKV()
	clock := newFakeClock()
	leader := newTestNode(t, mem.view(true), clock)
	follower := newTestNode(t, mem.view(false), clock)
	ls := httptest.NewServer(leader.s.HTTPHandler())
	defer ls.Close()
	leader.register(t, 1, 2)
	if _, ok := gather(t, follower.reg)["flaredb_store_state{store_id=1}"]; ok {
		t.Fatal("no leader known, yet the follower exported a store state")
	}
	mem.leaderURL.Store(ls.URL)
	clock.Advance(25 * time.Second)
	leader.register(t, 2)
	got := gather(t, follower.reg)
	if v, ok := got["flaredb_store_state{store_id=2}"]; !ok || v != 1 {
		t.Errorf("store 2: %v (present %v), want 1", v, ok)
	}
	if v, ok := got["flaredb_store_state{store_id=1}"]; !ok || v != 0 {
		t.Errorf("store 1 (Disconnected): %v (present %v), want 0", v, ok)
	}
	if _, ok := got["pd_store_count{state=Up}"]; ok {
		t.Error("a follower exported pd_store_count from a stale view")
	}
}
