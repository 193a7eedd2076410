package pd

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestScheduleConfigDefaultsMergeValidateAndPersist(t *testing.T) {
	mem := newMemKV()
	clock := newFakeClock()
	a := newTestNode(t, mem.view(true), clock)
	h := a.s.HTTPHandler()

	code, body := do(t, h, "GET", "/pd/api/v1/config/schedule", "")
	if code != 200 {
		t.Fatalf("GET = %d %s", code, body)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"max-snapshot-count": 64.0, "max-pending-peer-count": 64.0, "max-store-down-time": "30m0s",
		"leader-schedule-limit": 4.0, "region-schedule-limit": 2048.0, "split-merge-interval": "1h0m0s",
		"patrol-region-interval": "10ms", "low-space-ratio": 0.8, "high-space-ratio": 0.7,
		"leader-schedule-policy": "count", "max-store-preparing-time": "48h0m0s", "halt-scheduling": false,
		"enable-remove-down-replica": "true", "enable-joint-consensus": "true",
	} {
		if got[k] != want {
			t.Errorf("default %s = %#v, want %#v", k, got[k], want)
		}
	}
	if _, ok := got["schedulers-v2"]; !ok {
		t.Errorf("no schedulers-v2 in %s", body)
	}

	// Partial merge: only the named keys change.
	code, body = do(t, h, "POST", "/pd/api/v1/config/schedule", `{"max-snapshot-count": 3, "max-pending-peer-count": 16, "enable-joint-consensus": "false"}`)
	if code != 200 || body != "\"The config is updated.\"\n" {
		t.Fatalf("POST = %d %s", code, body)
	}
	cfg, err := a.s.ScheduleConfig(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxSnapshotCount != 3 || cfg.MaxPendingPeerCount != 16 || cfg.EnableJointConsensus || cfg.LeaderScheduleLimit != 4 {
		t.Fatalf("after merge: %+v", cfg)
	}

	// Validation: the key is named, nothing changes.
	for body, want := range map[string]string{
		`{"max-snapshot-cnt": 3}`:               `unknown config key \"max-snapshot-cnt\"`,
		`{"max-snapshot-count": "many"}`:        `config key \"max-snapshot-count\": want a non-negative integer`,
		`{"max-store-down-time": 5}`:            `config key \"max-store-down-time\": want a duration string`,
		`{"max-store-down-time": "soon"}`:       `config key \"max-store-down-time\": want a duration string`,
		`{"leader-schedule-policy": "random"}`:  `config key \"leader-schedule-policy\" must be`,
		`{"enable-joint-consensus": "maybe"}`:   `config key \"enable-joint-consensus\"`,
		`{"low-space-ratio": 2}`:                `config key \"low-space-ratio\"`,
		`[1,2]`:                                 `JSON object`,
		`{"max-snapshot-count": 5, "bogus": 1}`: `unknown config key \"bogus\"`,
	} {
		code, got := do(t, h, "POST", "/pd/api/v1/config/schedule", body)
		if code != http.StatusBadRequest || !strings.Contains(got, want) {
			t.Errorf("POST %s = %d %s, want 400 containing %s", body, code, got, want)
		}
	}
	if cfg2, _ := a.s.ScheduleConfig(ctxT(t)); !reflect.DeepEqual(cfg2, cfg) {
		t.Fatalf("a refused POST changed the config: %+v", cfg2)
	}

	// A new server over the same system keyspace (restart, new leader) sees it.
	a.kv.setLeader(false)
	b := newTestNode(t, mem.view(true), clock)
	cfgB, err := b.s.ScheduleConfig(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfgB, cfg) {
		t.Fatalf("new server sees %+v, want %+v", cfgB, cfg)
	}
}

func TestReplicationConfig(t *testing.T) {
	n := newLeader(t)
	h := n.s.HTTPHandler()
	_, body := do(t, h, "GET", "/pd/api/v1/config/replicate", "")
	if !strings.Contains(body, `"max-replicas": 3`) || !strings.Contains(body, `"location-labels": ""`) {
		t.Fatalf("GET replicate:\n%s", body)
	}
	if code, body := do(t, h, "POST", "/pd/api/v1/config/replicate", `{"max-replicas": 1, "location-labels": "zone,host"}`); code != 200 {
		t.Fatalf("POST = %d %s", code, body)
	}
	if code, _ := do(t, h, "POST", "/pd/api/v1/config/replicate", `{"max-replicas": 0}`); code != 400 {
		t.Fatalf("max-replicas 0 = %d, want 400", code)
	}
	// With max-replicas 1 a store of two may go offline.
	n.register(t, 1, 2)
	if err := n.s.DeleteStore(ctxT(t), 2, false); err != nil {
		t.Fatal(err)
	}
	_ = time.Second
}

func TestSchedulers(t *testing.T) {
	n := newLeader(t)
	n.register(t, 1)
	h := n.s.HTTPHandler()
	_, body := do(t, h, "GET", "/pd/api/v1/schedulers", "")
	var names []string
	if err := json.Unmarshal([]byte(body), &names); err != nil {
		t.Fatal(err)
	}
	want := []string{"balance-hot-region-scheduler", "balance-leader-scheduler", "balance-region-scheduler", "evict-slow-store-scheduler"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("defaults = %v", names)
	}
	if code, body := do(t, h, "DELETE", "/pd/api/v1/schedulers/balance-leader-scheduler", ""); code != 200 || body != "\"The scheduler is removed.\"\n" {
		t.Fatalf("DELETE = %d %s", code, body)
	}
	if code, _ := do(t, h, "DELETE", "/pd/api/v1/schedulers/balance-leader-scheduler", ""); code != 404 {
		t.Fatalf("second DELETE = %d, want 404", code)
	}
	if code, body := do(t, h, "POST", "/pd/api/v1/schedulers", `{"name":"evict-leader-scheduler","store_id":1}`); code != 200 {
		t.Fatalf("POST evict-leader = %d %s", code, body)
	}
	for _, bad := range []string{`{"name":"nope-scheduler"}`, `{"name":"evict-leader-scheduler"}`, `{"name":"balance-region-scheduler"}`} {
		if code, _ := do(t, h, "POST", "/pd/api/v1/schedulers", bad); code != 400 {
			t.Errorf("POST %s = %d, want 400", bad, code)
		}
	}
	if code, _ := do(t, h, "POST", "/pd/api/v1/schedulers", `{"name":"grant-leader-scheduler","store_id":9}`); code != 404 {
		t.Errorf("unknown store = %d, want 404", code)
	}
	// Persisted: a new leader sees the list.
	n.kv.setLeader(false)
	b := newTestNode(t, n.kv.memKV.view(true), n.clock)
	got, err := b.s.Schedulers(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "balance-hot-region-scheduler,balance-region-scheduler,evict-leader-scheduler,evict-slow-store-scheduler" {
		t.Fatalf("after restart: %v", got)
	}
}

func TestAllocIDIsMonotonicAcrossServers(t *testing.T) {
	mem := newMemKV()
	clock := newFakeClock()
	a := newTestNode(t, mem.view(true), clock)
	var last uint64
	for range 5 {
		id, err := a.s.AllocID(ctxT(t), 3)
		if err != nil {
			t.Fatal(err)
		}
		if id <= last {
			t.Fatalf("id %d after %d", id, last)
		}
		last = id + 2
	}
	big, err := a.s.AllocID(ctxT(t), 5000) // larger than one batch
	if err != nil || big <= last {
		t.Fatalf("big batch: %d %v", big, err)
	}
	last = big + 4999
	a.kv.setLeader(false)
	b := newTestNode(t, mem.view(true), clock)
	id, err := b.s.AllocID(ctxT(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if id <= last {
		t.Fatalf("new leader's id %d is not above %d", id, last)
	}
	// Back to the first server: it reloads and stays above b's.
	b.kv.setLeader(false)
	a.kv.setLeader(true)
	id2, err := a.s.AllocID(ctxT(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if id2 <= id {
		t.Fatalf("id %d after %d", id2, id)
	}
}
