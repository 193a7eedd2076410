package pd

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
)

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0B", 1023: "1023B", 1024: "1KiB", 96 << 20: "96MiB", 2000398934016: "1.819TiB", 1536: "1.5KiB", 54 << 30: "54GiB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// fixture: three stores, one region with a pending peer, store 3 silent.
func fixture(t *testing.T) *testNode {
	n := newLeader(t)
	n.register(t, 1, 2, 3)
	st := storeMeta(1, addrOf(1))
	st.Labels = []*metav1.StoreLabel{{Key: "zone", Value: "a"}}
	st.PeerAddress = "10.0.0.1:2380"
	if _, err := n.s.PutStore(ctxT(t), st); err != nil {
		t.Fatal(err)
	}
	r := region(10, "a", "m", 2, 3, 1, 2, 3)
	r.Peers[2].Role = metav1.PeerRole_PEER_ROLE_LEARNER
	hb := heartbeat(r, 1)
	hb.PendingPeers = []*metav1.Peer{r.Peers[2]}
	hb.DownPeers = []*pdv1.PeerStats{{Peer: r.Peers[1], DownSeconds: 30}}
	if _, err := n.s.RegionHeartbeat(ctxT(t), hb); err != nil {
		t.Fatal(err)
	}
	n.clock.Advance(25 * time.Second)
	n.register(t, 2)
	if _, err := n.s.StoreHeartbeat(ctxT(t), stats(1), nil); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStoresJSONShape(t *testing.T) {
	n := fixture(t)
	code, body := do(t, n.s.HTTPHandler(), "GET", "/pd/api/v1/store/1", "")
	want := `{
  "id": 1,
  "address": "10.0.0.1:2379",
  "state": "Up",
  "capacity": 2199023255552,
  "available": 1099511627776,
  "store": {
    "id": 1,
    "address": "10.0.0.1:2379",
    "labels": [
      {
        "key": "zone",
        "value": "a"
      }
    ],
    "version": "centra-test",
    "peer_address": "10.0.0.1:2380",
    "start_timestamp": 1700000000,
    "last_heartbeat": 1795316425000000000,
    "node_state": 1,
    "state_name": "Up"
  },
  "status": {
    "capacity": "2TiB",
    "available": "1TiB",
    "used_size": "96MiB",
    "leader_count": 1,
    "leader_weight": 1,
    "leader_score": 1,
    "leader_size": 10,
    "region_count": 1,
    "region_weight": 1,
    "region_score": 10,
    "region_size": 10,
    "start_ts": "2023-11-14T22:13:20Z",
    "last_heartbeat_ts": "2026-11-22T03:00:25Z",
    "uptime": "26476h47m5s"
  }
}
`
	if code != 200 || body != want {
		t.Fatalf("GET /store/1 = %d\n%s\nwant\n%s", code, body, want)
	}
	_, body = do(t, n.s.HTTPHandler(), "GET", "/pd/api/v1/stores", "")
	for _, s := range []string{`"count": 3`, `"state_name": "Disconnected"`, `"learner_count": 1`, `"pending_peer_count": 1`} {
		if !strings.Contains(body, s) {
			t.Errorf("GET /stores lacks %s:\n%s", s, body)
		}
	}
	if strings.Contains(body, `"state": 0`) {
		t.Errorf("Up state must be omitted:\n%s", body)
	}
}

func TestRegionsJSONShape(t *testing.T) {
	n := fixture(t)
	h := n.s.HTTPHandler()
	want := `{
  "id": 10,
  "start_key": "61",
  "end_key": "6D",
  "epoch": {
    "conf_ver": 2,
    "version": 3
  },
  "peers": [
    {
      "id": 1001,
      "store_id": 1,
      "role_name": "Voter"
    },
    {
      "id": 1002,
      "store_id": 2,
      "role_name": "Voter"
    },
    {
      "id": 1003,
      "store_id": 3,
      "role": 1,
      "role_name": "Learner",
      "is_learner": true
    }
  ],
  "leader": {
    "id": 1001,
    "store_id": 1,
    "role_name": "Voter"
  },
  "down_peers": [
    {
      "peer": {
        "id": 1002,
        "store_id": 2,
        "role_name": "Voter"
      },
      "down_seconds": 30
    },
    {
      "peer": {
        "id": 1003,
        "store_id": 3,
        "role": 1,
        "role_name": "Learner",
        "is_learner": true
      },
      "down_seconds": 25
    }
  ],
  "pending_peers": [
    {
      "id": 1003,
      "store_id": 3,
      "role": 1,
      "role_name": "Learner",
      "is_learner": true
    },
    {
      "id": 1002,
      "store_id": 2,
      "role_name": "Voter"
    }
  ],
  "written_bytes": 0,
  "read_bytes": 0,
  "written_keys": 0,
  "read_keys": 0,
  "approximate_size": 10,
  "approximate_keys": 1000
}
`
	for _, path := range []string{"/pd/api/v1/region/id/10", "/pd/api/v1/region/key/b", "/pd/api/v1/region/key/62?format=hex"} {
		if code, body := do(t, h, "GET", path, ""); code != 200 || body != want {
			t.Errorf("GET %s = %d\n%s", path, code, body)
		}
	}
	if code, _ := do(t, h, "GET", "/pd/api/v1/region/key/z", ""); code != 404 {
		t.Errorf("key outside every region = %d, want 404", code)
	}
	if code, body := do(t, h, "GET", "/pd/api/v1/regions", ""); code != 200 || !strings.HasPrefix(body, "{\n  \"count\": 1,\n  \"regions\": [") {
		t.Errorf("GET /regions = %d %s", code, body)
	}
	_, body := do(t, h, "GET", "/pd/api/v1/stats/region", "")
	wantStats := `{
  "count": 1,
  "empty_count": 0,
  "storage_size": 10,
  "user_storage_size": 10,
  "storage_keys": 1000,
  "store_leader_count": {
    "1": 1
  },
  "store_peer_count": {
    "1": 1,
    "2": 1,
    "3": 1
  },
  "store_leader_size": {
    "1": 10
  },
  "store_leader_keys": {
    "1": 1000
  },
  "store_peer_size": {
    "1": 10,
    "2": 10,
    "3": 10
  },
  "store_peer_keys": {
    "1": 1000,
    "2": 1000,
    "3": 1000
  },
  "pending_peers": 2,
  "down_peers": 2
}
`
	if body != wantStats {
		t.Errorf("stats/region:\n%s", body)
	}
	if _, body := do(t, h, "GET", "/pd/api/v1/stats/region?start_key=x", ""); !strings.Contains(body, `"count": 0`) {
		t.Errorf("stats/region outside: %s", body)
	}
}

func TestOperators(t *testing.T) {
	n := fixture(t)
	h := n.s.HTTPHandler()
	if code, body := do(t, h, "GET", "/pd/api/v1/operators", ""); code != 200 || body != "[]\n" {
		t.Fatalf("empty = %d %s", code, body)
	}
	// In order: only one operator per region, so the last POST is refused
	// because the one before it succeeded.
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"name":"transfer-leader","region_id":10,"to_store_id":9}`, 400},
		{`{"name":"add-peer","region_id":10,"store_id":1}`, 400},
		{`{"name":"remove-peer","region_id":99,"store_id":1}`, 404},
		{`{"name":"split-region","region_id":10,"policy":"half"}`, 400},
		{`{"name":"teleport","region_id":10}`, 400},
		{`{"name":"transfer-leader","region_id":10,"to_store_id":2}`, 200},
		{`{"name":"remove-peer","region_id":10,"store_id":3}`, 400}, // one per region
	} {
		if code, got := do(t, h, "POST", "/pd/api/v1/operators", tc.body); code != tc.want {
			t.Errorf("POST %s = %d %s, want %d", tc.body, code, got, tc.want)
		}
	}
	_, body := do(t, h, "GET", "/pd/api/v1/operators", "")
	if !strings.Contains(body, `admin-transfer-leader {transfer leader: store 1 to 2} (kind:admin,leader, region:10(3, 2)`) {
		t.Errorf("GET operators:\n%s", body)
	}
	_, body = do(t, h, "GET", "/pd/api/v1/operators?object", "")
	if !strings.Contains(body, `"region_id": 10`) || !strings.Contains(body, `"kind": "admin,leader"`) {
		t.Errorf("GET operators?object:\n%s", body)
	}
	if code, _ := do(t, h, "DELETE", "/pd/api/v1/operators/10", ""); code != 200 {
		t.Errorf("DELETE = %d", code)
	}
	if code, _ := do(t, h, "DELETE", "/pd/api/v1/operators/10", ""); code != 404 {
		t.Errorf("second DELETE = %d", code)
	}
}

func TestHealthAndMembers(t *testing.T) {
	mem := newMemKV()
	mem.leaderURL.Store("http://10.0.0.2:2379")
	n := newTestNode(t, mem.view(false), newFakeClock())
	n.s.cfg.Members = func(ctx context.Context) ([]Member, error) {
		return []Member{
			{Name: "cp1", MemberID: 1, PeerURLs: []string{"https://10.0.0.1:2380"}, ClientURLs: []string{"http://10.0.0.1:2379"}},
			{Name: "cp2", MemberID: 2, PeerURLs: []string{"https://10.0.0.2:2380"}, ClientURLs: []string{"http://10.0.0.2:2379"}},
		}, nil
	}
	h := n.s.HTTPHandler()
	// Answered locally even on a follower.
	code, body := do(t, h, "GET", "/pd/api/v1/members", "")
	if code != 200 || !strings.Contains(body, "\"leader\": {\n    \"name\": \"cp2\"") {
		t.Fatalf("members = %d %s", code, body)
	}
	code, body = do(t, h, "GET", "/pd/api/v1/health", "")
	if code != 200 || strings.Count(body, `"health": true`) != 2 {
		t.Fatalf("health = %d %s", code, body)
	}
}

func TestFollowerForwardsToLeader(t *testing.T) {
	mem := newMemKV()
	clock := newFakeClock()
	leader := newTestNode(t, mem.view(true), clock)
	follower := newTestNode(t, mem.view(false), clock)
	ls := httptest.NewServer(leader.s.HTTPHandler())
	defer ls.Close()
	fs := httptest.NewServer(follower.s.HTTPHandler())
	defer fs.Close()
	mem.leaderURL.Store(ls.URL)
	leader.register(t, 1, 2, 3)

	get := func(base, path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/pd/api/v1/stores", "/pd/api/v1/config/schedule", "/pd/api/v1/store/2", "/pd/api/v1/store/9"} {
		lc, lb := get(ls.URL, path)
		fc, fb := get(fs.URL, path)
		if lc != fc || lb != fb {
			t.Errorf("%s: leader %d %s, follower %d %s", path, lc, lb, fc, fb)
		}
	}
	// A mutation through the follower lands on the leader.
	resp, err := http.Post(fs.URL+"/pd/api/v1/config/schedule", "application/json", strings.NewReader(`{"max-store-down-time":"2m"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST via follower = %d", resp.StatusCode)
	}
	if cfg, _ := leader.s.ScheduleConfig(ctxT(t)); cfg.MaxStoreDownTime.Duration != 2*time.Minute {
		t.Fatalf("leader config = %v", cfg.MaxStoreDownTime)
	}
	// A forwarded request that reaches a non-leader is refused, not looped.
	mem.leaderURL.Store(fs.URL)
	if c, _ := get(fs.URL, "/pd/api/v1/stores"); c != http.StatusServiceUnavailable {
		t.Fatalf("loop = %d, want 503", c)
	}
	mem.leaderURL.Store("")
	if c, _ := get(fs.URL, "/pd/api/v1/stores"); c != http.StatusServiceUnavailable {
		t.Fatalf("no leader = %d, want 503", c)
	}
}
