package pd

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
)

func TestAdminOperatorSteps(t *testing.T) {
	sm := newSim(t, []uint64{1, 2, 3, 4}, 2)
	h := sm.n.s.HTTPHandler()
	for _, tc := range []struct {
		body, want string
		code       int
	}{
		{`{"name":"transfer-peer","region_id":100,"from_store_id":1,"to_store_id":4}`,
			`admin-transfer-peer {mv peer: store [1] to [4]} (kind:admin,region, region:100(1, 1)`, 200},
		{`{"name":"remove-peer","region_id":101,"store_id":4}`, "has no peer on store 4", 400},
		{`{"name":"split-region","region_id":101,"policy":"half"}`, "want approximate, scan or usekey", 400},
		{`{"name":"split-region","region_id":101,"policy":"usekey","keys":["6B30303030"]}`, "is not inside region 101", 400},
		{`{"name":"merge-region","source_region_id":100,"target_region_id":101}`, "merge-region operators cannot run", 400},
		{`{"name":"transfer-region","region_id":101,"to_store_ids":[1,2,3]}`, "already matches the request", 400},
		{`{"name":"add-learner","region_id":101,"store_id":4}`, `admin-add-learner {add peer: store [4]}`, 200},
	} {
		code, body := do(t, h, "POST", "/pd/api/v1/operators", tc.body)
		if code != tc.code {
			t.Fatalf("POST %s = %d %s, want %d", tc.body, code, body, tc.code)
		}
		if code != 200 && !strings.Contains(body, tc.want) {
			t.Fatalf("POST %s = %s, want %q", tc.body, body, tc.want)
		}
		if code == 200 {
			if _, list := do(t, h, "GET", "/pd/api/v1/operators", ""); !strings.Contains(list, tc.want) {
				t.Fatalf("GET operators:\n%s\nwant %q", list, tc.want)
			}
		}
	}
	_, body := do(t, h, "GET", "/pd/api/v1/operators", "")
	if !strings.Contains(body, `steps:[0:{add learner peer `) || !strings.Contains(body, `on store 4}, 1:{promote learner peer `) || !strings.Contains(body, `2:{remove peer on store 1}]`) {
		t.Fatalf("transfer-peer steps:\n%s", body)
	}
	if _, body := do(t, h, "GET", "/pd/api/v1/operators?kind=leader", ""); body != "[]\n" {
		t.Fatalf("?kind=leader: %s", body)
	}
	if code, body := do(t, h, "GET", "/pd/api/v1/operators/100", ""); code != 200 || !strings.Contains(body, `"status": "CREATED"`) {
		t.Fatalf("GET operators/100 = %d %s", code, body)
	}
	sm.regionHeartbeats(t) // the first step goes out
	if _, body := do(t, h, "GET", "/pd/api/v1/operators/100", ""); !strings.Contains(body, `"status": "STARTED"`) {
		t.Fatalf("after a heartbeat: %s", body)
	}
	sm.until(t, "admin operators done", func() bool { return len(sm.n.s.co.Controller().Operators()) == 0 })
	_, body = do(t, h, "GET", "/pd/api/v1/operators/records", "")
	for _, want := range []string{"admin-transfer-peer {mv peer: store [1] to [4]}", "admin-add-learner {add peer: store [4]}"} {
		if !strings.Contains(body, want) || !strings.Contains(body[strings.Index(body, want):], " finished\"") {
			t.Fatalf("records: want %q finished:\n%s", want, body)
		}
	}
}

func TestSchedulerPauseAPI(t *testing.T) {
	n := newLeader(t)
	h := n.s.HTTPHandler()
	for _, tc := range []struct{ method, path, body, want string }{
		{"POST", "/pd/api/v1/schedulers/balance-region-scheduler", `{"delay": 60}`, `"Pause the scheduler successfully."`},
		{"GET", "/pd/api/v1/schedulers?status=paused", "", `"balance-region-scheduler"`},
		{"POST", "/pd/api/v1/schedulers/balance-region-scheduler", `{"delay": 0}`, `"Resume the scheduler successfully."`},
		{"GET", "/pd/api/v1/schedulers?status=paused", "", `[]`},
		{"POST", "/pd/api/v1/schedulers/grant-leader-scheduler", `{"delay": 5}`, `not enabled`},
		{"POST", "/pd/api/v1/schedulers/balance-region-scheduler", `{"delay": -1}`, `seconds to pause, 0 to resume`},
		{"GET", "/pd/api/v1/config/schedule", "", `"schedulers": [
    "balance-hot-region-scheduler",
    "balance-leader-scheduler",
    "balance-region-scheduler",
    "evict-slow-store-scheduler"
  ]`},
	} {
		if _, body := do(t, h, tc.method, tc.path, tc.body); !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s = %s, want %s", tc.method, tc.path, tc.body, body, tc.want)
		}
	}
	do(t, h, "POST", "/pd/api/v1/schedulers/balance-leader-scheduler", `{"delay": 30}`)
	n.clock.Advance(31 * time.Second)
	if _, body := do(t, h, "GET", "/pd/api/v1/schedulers?status=paused", ""); body != "[]\n" {
		t.Errorf("pause past its delay: %s", body)
	}
}

func TestStoreLimitAndWeightAPI(t *testing.T) {
	n := newLeader(t)
	n.register(t, 1, 2)
	h := n.s.HTTPHandler()
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/pd/api/v1/stores/limit", "", 200, `"1": {
    "add-peer": 15,
    "remove-peer": 15
  }`},
		{"POST", "/pd/api/v1/stores/limit", `{"rate": 30, "type": "add-peer"}`, 200, ``},
		{"POST", "/pd/api/v1/store/2/limit", `{"rate": 5}`, 200, ``},
		{"GET", "/pd/api/v1/stores/limit", "", 200, `"2": {
    "add-peer": 5,
    "remove-peer": 5
  }`},
		{"GET", "/pd/api/v1/config/schedule", "", 200, `"1": {
      "add-peer": 30,
      "remove-peer": 15
    }`},
		{"POST", "/pd/api/v1/stores/limit", `{"rate": 0}`, 400, `rate must be positive`},
		{"POST", "/pd/api/v1/stores/limit", `{"rate": 3, "type": "snap"}`, 400, `type must be add-peer or remove-peer`},
		{"POST", "/pd/api/v1/store/9/limit", `{"rate": 3}`, 404, `store 9`},
		{"POST", "/pd/api/v1/store/1/weight", `{"leader": 2, "region": 3}`, 200, ``},
		{"POST", "/pd/api/v1/store/1/weight", `{"leader": 0, "region": 3}`, 400, `must be positive`},
		{"POST", "/pd/api/v1/store/1/state?state=Gone", ``, 400, `state must be Up or Offline`},
	} {
		code, body := do(t, h, tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s = %d %s, want %d %s", tc.method, tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
	if _, body := do(t, h, "GET", "/pd/api/v1/store/1", ""); !strings.Contains(body, `"leader_weight": 2`) || !strings.Contains(body, `"region_weight": 3`) {
		t.Errorf("weights not shown:\n%s", body)
	}
}

// TestScatterRegion: scatter-region moves the region's voters to stores
// picked at random among the Up ones and hands leadership to one of them,
// through the same controller and heartbeat steps as every operator.
// Scheduling is halted so that only the admin operators move anything.
func TestScatterRegion(t *testing.T) {
	sm := newSim(t, []uint64{1, 2, 3, 4, 5, 6}, 1)
	h := sm.n.s.HTTPHandler()
	if code, body := do(t, h, "POST", "/pd/api/v1/config/schedule", `{"halt-scheduling": true}`); code != 200 {
		t.Fatalf("halt scheduling: %d %s", code, body)
	}
	used := map[uint64]bool{}
	for i := range 8 {
		if code, body := do(t, h, "POST", "/pd/api/v1/operators", `{"name":"scatter-region","region_id":100}`); code != 200 {
			t.Fatalf("scatter %d: %d %s", i, code, body)
		}
		sm.until(t, "scatter done", func() bool { return len(sm.n.s.co.Controller().Operators()) == 0 })
		r := sm.regions[100]
		stores := map[uint64]bool{}
		for _, p := range r.Peers {
			if p.Role == metav1.PeerRole_PEER_ROLE_LEARNER || stores[p.StoreId] {
				t.Fatalf("scatter %d: peers %v", i, r.Peers)
			}
			stores[p.StoreId] = true
			used[p.StoreId] = true
		}
		if len(stores) != 3 || !stores[sm.leader[100]] {
			t.Fatalf("scatter %d: peers %v, leader on store %d", i, r.Peers, sm.leader[100])
		}
	}
	// 8 random picks of 3 of 6 stores all landing on the same 3: 20^-7.
	if len(used) < 4 {
		t.Fatalf("8 scatters used only stores %v", used)
	}
	_, body := do(t, h, "GET", "/pd/api/v1/operators/records", "")
	if !strings.Contains(body, "admin-scatter-region {scatter peers to stores") {
		t.Fatalf("records:\n%s", body)
	}
	// With only stores 1 and 2 Up, 3 voters have nowhere to go.
	for id := uint64(3); id <= 6; id++ {
		sm.dead[id] = true
	}
	sm.n.clock.Advance(time.Hour)
	sm.storeHeartbeats(t)
	if code, body := do(t, h, "POST", "/pd/api/v1/operators", `{"name":"scatter-region","region_id":100}`); code != 400 || !strings.Contains(body, "nothing to scatter to") {
		t.Fatalf("scatter with 2 Up stores = %d %s, want 400 nothing to scatter to", code, body)
	}
}

// TestSplitRegionOperator: split-region's step rides on the region's
// heartbeat with the policy and key, and the operator succeeds when the
// region's version moved (the region keeps its ID on the left side).
func TestSplitRegionOperator(t *testing.T) {
	sm := newSim(t, []uint64{1, 2, 3}, 2) // region 100 ["", k0001), 101 [k0001, "")
	h := sm.n.s.HTTPHandler()
	for _, tc := range []struct{ body, policy, key string }{
		{`{"name":"split-region","region_id":101,"policy":"usekey","keys":["6B30303035"]}`, "SPLIT_POLICY_USE_KEY", "k0005"},
		{`{"name":"split-region","region_id":101,"policy":"approximate"}`, "SPLIT_POLICY_HALFWAY_UNSPECIFIED", ""},
	} {
		if code, body := do(t, h, "POST", "/pd/api/v1/operators", tc.body); code != 200 {
			t.Fatalf("POST %s = %d %s", tc.body, code, body)
		}
		r := sm.regions[101]
		hb := &pdv1.RegionHeartbeatRequest{Region: proto.Clone(r).(*metav1.Region), Leader: r.Peers[0], Term: 1}
		resp, err := sm.n.s.RegionHeartbeat(ctxT(t), hb)
		if err != nil {
			t.Fatal(err)
		}
		sp := resp.GetSplitRegion()
		if sp.GetPolicy().String() != tc.policy || (tc.key != "" && (len(sp.GetKeys()) != 1 || string(sp.GetKeys()[0]) != tc.key)) ||
			!proto.Equal(resp.GetRegionEpoch(), r.RegionEpoch) {
			t.Fatalf("%s: step %v", tc.body, resp)
		}
		// The leader splits: region 101 keeps [k0001, split), version + 1.
		r.RegionEpoch.Version++
		r.EndKey = []byte("k0005")
		hb = &pdv1.RegionHeartbeatRequest{Region: proto.Clone(r).(*metav1.Region), Leader: r.Peers[0], Term: 1}
		if resp, err = sm.n.s.RegionHeartbeat(ctxT(t), hb); err != nil || resp.GetSplitRegion() != nil {
			t.Fatalf("after the split: %v %v", resp, err)
		}
		if ops := sm.n.s.co.Controller().Operators(); len(ops) != 0 {
			t.Fatalf("operators after the split: %v", ops)
		}
		r.EndKey = nil // the next case splits the same range again
	}
	_, body := do(t, h, "GET", "/pd/api/v1/operators/records", "")
	for _, want := range []string{"admin-split-region {split region at key 6B30303035}", "admin-split-region {split region halfway}"} {
		if !strings.Contains(body, want) || !strings.Contains(body[strings.Index(body, want):], " finished\"") {
			t.Fatalf("records: want %q finished:\n%s", want, body)
		}
	}
}
