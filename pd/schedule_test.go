package pd

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
)

// sim plays FlareDB stores and region leaders against a real Server: it
// sends region heartbeats, applies the steps PD answers with when their
// epoch matches (as the store side must), and reports hosted regions in
// store heartbeats.
type sim struct {
	n       *testNode
	regions map[uint64]*metav1.Region
	leader  map[uint64]uint64 // region -> leader store
	dead    map[uint64]bool   // stores that stopped
	stores  []uint64
	steps   int
}

func newSim(t *testing.T, stores []uint64, regions int) *sim {
	sm := &sim{n: newLeader(t), regions: map[uint64]*metav1.Region{}, leader: map[uint64]uint64{}, dead: map[uint64]bool{}, stores: stores}
	for i := range regions {
		id := uint64(100 + i)
		key := func(k int) string {
			if k >= regions {
				return ""
			}
			return fmt.Sprintf("k%04d", k)
		}
		start := key(i)
		if i == 0 {
			start = ""
		}
		r := region(id, start, key(i+1), 1, 1, stores[:3]...)
		sm.regions[id] = r
		sm.leader[id] = stores[0]
	}
	sm.storeHeartbeats(t)
	sm.regionHeartbeats(t)
	return sm
}

// storeHeartbeats sends each live store's heartbeat with the regions it
// holds a peer of.
func (sm *sim) storeHeartbeats(t *testing.T) {
	t.Helper()
	for _, id := range sm.stores {
		if sm.dead[id] {
			continue
		}
		st := &pdv1.StoreStats{StoreId: id, Capacity: 100 << 30, Available: 50 << 30}
		for rid, r := range sm.regions {
			if slices.ContainsFunc(r.Peers, func(p *metav1.Peer) bool { return p.StoreId == id }) {
				st.RegionIds = append(st.RegionIds, rid)
			}
		}
		slices.Sort(st.RegionIds)
		_, err := sm.n.s.StoreHeartbeat(ctxT(t), st, storeMeta(id, addrOf(id)))
		if errors.Is(err, ErrStoreTombstone) {
			sm.dead[id] = true // a buried store stops
			continue
		}
		if err != nil {
			t.Fatalf("store %d heartbeat: %v", id, err)
		}
	}
}

// regionHeartbeats sends one heartbeat per region and applies the answer.
func (sm *sim) regionHeartbeats(t *testing.T) {
	t.Helper()
	ids := make([]uint64, 0, len(sm.regions))
	for id := range sm.regions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r := sm.regions[id]
		var leader *metav1.Peer
		for _, p := range r.Peers {
			if p.StoreId == sm.leader[id] {
				leader = p
			}
		}
		hb := &pdv1.RegionHeartbeatRequest{Region: proto.Clone(r).(*metav1.Region), Leader: leader, Term: 1, ApproximateSize: 8}
		for _, p := range r.Peers {
			if sm.dead[p.StoreId] {
				hb.DownPeers = append(hb.DownPeers, &pdv1.PeerStats{Peer: p, DownSeconds: 60})
			}
		}
		resp, err := sm.n.s.RegionHeartbeat(ctxT(t), hb)
		if err != nil {
			t.Fatalf("region %d heartbeat: %v", id, err)
		}
		sm.apply(t, r, resp)
	}
}

// apply runs a step as a region leader must: only if the epoch matches.
func (sm *sim) apply(t *testing.T, r *metav1.Region, resp *pdv1.RegionHeartbeatResponse) {
	if resp.ChangePeer == nil && resp.TransferLeader == nil {
		return
	}
	if resp.OperatorId == 0 || resp.TargetPeer.GetStoreId() != sm.leader[r.Id] {
		t.Fatalf("step without operator id or for another leader: %v", resp)
	}
	if !proto.Equal(resp.RegionEpoch, r.RegionEpoch) {
		return
	}
	sm.steps++
	if tl := resp.TransferLeader; tl != nil {
		if !slices.ContainsFunc(r.Peers, func(p *metav1.Peer) bool { return p.Id == tl.Peer.Id && p.StoreId == tl.Peer.StoreId }) {
			t.Fatalf("transfer to a peer the region lacks: %v", tl)
		}
		sm.leader[r.Id] = tl.Peer.StoreId
		return
	}
	cp := resp.ChangePeer
	r.RegionEpoch.ConfVer++
	switch cp.ChangeType {
	case pdv1.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER_NODE:
		if slices.ContainsFunc(r.Peers, func(p *metav1.Peer) bool { return p.StoreId == cp.Peer.StoreId }) {
			t.Fatalf("add learner on a store holding a peer: %v of %v", cp, r.Peers)
		}
		r.Peers = append(r.Peers, &metav1.Peer{Id: cp.Peer.Id, StoreId: cp.Peer.StoreId, Role: metav1.PeerRole_PEER_ROLE_LEARNER})
	case pdv1.ConfChangeType_CONF_CHANGE_TYPE_ADD_NODE_UNSPECIFIED:
		for _, p := range r.Peers {
			if p.Id == cp.Peer.Id {
				p.Role = metav1.PeerRole_PEER_ROLE_VOTER_UNSPECIFIED
			}
		}
	case pdv1.ConfChangeType_CONF_CHANGE_TYPE_REMOVE_NODE:
		if cp.Peer.StoreId == sm.leader[r.Id] {
			t.Fatalf("PD asked leader of region %d to remove itself", r.Id)
		}
		r.Peers = slices.DeleteFunc(r.Peers, func(p *metav1.Peer) bool { return p.Id == cp.Peer.Id })
	}
}

// round is one patrol, then heartbeats; the clock moves 10 s.
func (sm *sim) round(t *testing.T) {
	t.Helper()
	sm.n.s.patrol(ctxT(t))
	sm.regionHeartbeats(t)
	sm.storeHeartbeats(t)
	sm.regionHeartbeats(t)
	sm.n.clock.Advance(10 * time.Second)
}

func (sm *sim) peersOn(store uint64) int {
	n := 0
	for _, r := range sm.regions {
		for _, p := range r.Peers {
			if p.StoreId == store {
				n++
			}
		}
	}
	return n
}

func (sm *sim) leadersOn(store uint64) int {
	n := 0
	for _, s := range sm.leader {
		if s == store {
			n++
		}
	}
	return n
}

// until runs rounds until cond holds.
func (sm *sim) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		sm.round(t)
	}
	t.Fatalf("%s: not reached after 200 rounds; peers 1-4: %d %d %d %d", what, sm.peersOn(1), sm.peersOn(2), sm.peersOn(3), sm.peersOn(4))
}

// TestScaleOutThroughHeartbeats: a fourth store gets a fair share of peers
// and leaders, only through heartbeat responses.
func TestScaleOutThroughHeartbeats(t *testing.T) {
	sm := newSim(t, []uint64{1, 2, 3, 4}, 20)
	sm.until(t, "balanced", func() bool {
		return sm.peersOn(4) >= 13 && sm.leadersOn(4) >= 4 && len(sm.n.s.co.Controller().Operators()) == 0
	})
	if sm.steps == 0 {
		t.Fatal("no step applied")
	}
	h := sm.n.s.HTTPHandler()
	_, body := do(t, h, "GET", "/pd/api/v1/operators/records", "")
	if !strings.Contains(body, "balance-region {mv peer: store [") || !strings.Contains(body, " finished") {
		t.Fatalf("records:\n%.2000s", body)
	}
	_, body = do(t, h, "GET", "/pd/api/v1/stats/region", "")
	if !strings.Contains(body, `"pending_peers": 0`) {
		t.Fatalf("stats/region:\n%s", body)
	}
	sm.n.s.patrol(ctxT(t))
	got := gather(t, sm.n.reg)
	for k, min := range map[string]float64{
		"pd_schedule_operators_total{kind=region}{status=SUCCESS}{type=balance-region}": 1,
		"pd_schedule_operators_total{kind=leader}{status=SUCCESS}{type=balance-leader}": 1,
		"pd_scheduler_runs_total{result=scheduled}{scheduler=balance-region-scheduler}": 1,
		"pd_store_region_count{store_id=4}":                                             13,
		"pd_store_region_score{store_id=4}":                                             13 * 8,
		"pd_store_leader_count{store_id=4}":                                             4,
		"pd_store_snapshots_in_flight{direction=receiving}{store_id=4}":                 0,
	} {
		if v, ok := got[k]; !ok || v < min {
			t.Errorf("%s = %v (present %v), want >= %v", k, v, ok, min)
		}
	}
	if got["flaredb_pending_peers_total"] != 0 {
		t.Errorf("flaredb_pending_peers_total = %v, want 0", got["flaredb_pending_peers_total"])
	}
}

// TestDownStoreReplaced: a store silent past max-store-down-time loses
// its peers to the others; pending peers return to 0.
func TestDownStoreReplaced(t *testing.T) {
	sm := newSim(t, []uint64{1, 2, 3, 4}, 6)
	h := sm.n.s.HTTPHandler()
	if code, body := do(t, h, "POST", "/pd/api/v1/config/schedule", `{"max-store-down-time": "30s"}`); code != 200 {
		t.Fatal(body)
	}
	sm.dead[3] = true
	sm.until(t, "store 3 emptied", func() bool { return sm.peersOn(3) == 0 })
	for id, r := range sm.regions {
		if len(r.Peers) != 3 {
			t.Fatalf("region %d: %v", id, r.Peers)
		}
	}
	sm.until(t, "operators done", func() bool { return len(sm.n.s.co.Controller().Operators()) == 0 })
	_, body := do(t, h, "GET", "/pd/api/v1/stats/region", "")
	if !strings.Contains(body, `"pending_peers": 0`) || !strings.Contains(body, `"down_peers": 0`) {
		t.Fatalf("stats/region:\n%s", body)
	}
}

// TestOfflineToTombstone: DELETE /store drains the store and buries it;
// POST /store/{id}/state?state=Up cancels a drain.
func TestOfflineToTombstone(t *testing.T) {
	sm := newSim(t, []uint64{1, 2, 3, 4}, 6)
	h := sm.n.s.HTTPHandler()
	sm.n.s.co.Pause("balance-region-scheduler", time.Hour)
	if code, body := do(t, h, "DELETE", "/pd/api/v1/store/1", ""); code != 200 {
		t.Fatal(body)
	}
	if code, body := do(t, h, "POST", "/pd/api/v1/store/1/state?state=Up", ""); code != 200 || stateOf(t, sm.n, 1) != StateUp {
		t.Fatalf("cancel offline: %d %s", code, body)
	}
	if code, body := do(t, h, "DELETE", "/pd/api/v1/store/1", ""); code != 200 {
		t.Fatal(body)
	}
	sm.until(t, "store 1 tombstone", func() bool { return stateOf(t, sm.n, 1) == StateTombstone })
	if sm.peersOn(1) != 0 {
		t.Fatalf("tombstone store holds %d peers", sm.peersOn(1))
	}
	if code, body := do(t, h, "POST", "/pd/api/v1/store/1/state?state=Up", ""); code != 410 {
		t.Fatalf("tombstone back Up: %d %s", code, body)
	}
	if code, body := do(t, h, "DELETE", "/pd/api/v1/stores/remove-tombstone", ""); code != 200 {
		t.Fatal(body)
	}
	if code, _ := do(t, h, "GET", "/pd/api/v1/store/1", ""); code != 404 {
		t.Fatalf("removed tombstone still there: %d", code)
	}
}

// TestEvictLeaderThroughAPI: evict-leader-scheduler empties a store of
// leaders; removing it lets balance-leader bring some back.
func TestEvictLeaderThroughAPI(t *testing.T) {
	sm := newSim(t, []uint64{1, 2, 3}, 8)
	h := sm.n.s.HTTPHandler()
	if code, body := do(t, h, "POST", "/pd/api/v1/schedulers", `{"name":"evict-leader-scheduler","store_id":1}`); code != 200 {
		t.Fatal(body)
	}
	sm.until(t, "no leader on store 1", func() bool { return sm.leadersOn(1) == 0 })
	if code, body := do(t, h, "DELETE", "/pd/api/v1/schedulers/evict-leader-scheduler-1", ""); code != 200 {
		t.Fatal(body)
	}
	sm.until(t, "leaders back on store 1", func() bool { return sm.leadersOn(1) >= 2 })
}

// TestOperatorsSurviveReloadNotLeaderChange: a reload of the cache (a
// lost compare-and-swap) keeps the operators; another node leading and
// claiming the PD epoch in between drops them.
func TestOperatorsSurviveReloadNotLeaderChange(t *testing.T) {
	sm := newSim(t, []uint64{1, 2, 3, 4}, 1)
	s := sm.n.s
	if err := s.AddOperator(ctxT(t), OperatorRequest{Name: "add-learner", RegionID: 100, StoreID: 4}); err != nil {
		t.Fatal(err)
	}
	unlock := s.lockWrite()
	s.invalidate()
	unlock()
	if ops, err := s.Operators(ctxT(t)); err != nil || len(ops) != 1 {
		t.Fatalf("after a reload: %d operators, %v; want 1", len(ops), err)
	}
	// Leadership goes to another node and back (A -> B -> A, three terms).
	sm.n.kv.setLeader(false)
	other := newTestNode(t, sm.n.kv.memKV.view(true), sm.n.clock)
	if _, err := other.s.Stores(ctxT(t)); err != nil { // claims the epoch
		t.Fatal(err)
	}
	other.kv.setLeader(false)
	sm.n.kv.setLeader(true)
	if ops, err := s.Operators(ctxT(t)); err != nil || len(ops) != 0 {
		t.Fatalf("after another leadership: %d operators, %v; want 0", len(ops), err)
	}
}
