//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestPD runs the placement driver's end-to-end checks (issue 4) on one
// cluster of 3 control-plane nodes and 3 stores, in an order that keeps
// the store-state clocks apart: PD keeps heartbeat times in the leader's
// memory, so a PD leader change or a control-plane restart gives every
// store a fresh grace period.
//
//  1. The FlareDB scale-out runbook adds store 4 (flaredb-server --config
//     with the runbook's flaredb.toml): Up in GET /pd/api/v1/stores on every
//     control-plane node and in cluster-status (centra flaredb and
//     flaredb-client); its log says "Registered with PD, store_id=4";
//     `flaredb-client --endpoint http://STORE4 put test-key test-value`
//     then `get test-key` prints test-value.
//  2. Killing the PD (shard-0) leader leaves the same store list.
//  3. In parallel: a SIGKILLed store goes Disconnected, then Down once
//     max-store-down-time (lowered to 25s through POST /config/schedule)
//     has passed; a duplicate store_id from another address is refused and
//     the troubleshooting runbook's fix (new store_id, wipe, restart) works;
//     a restarted store keeps its id.
//  4. DELETE /pd/api/v1/store/{id}: the Down store goes Offline and stays
//     there (it holds a peer of the bootstrap region); one of 4 Up stores
//     goes Offline and Tombstone (it holds no region); a delete that
//     would leave fewer than 3 Up stores is refused with 400 unless ?force.
//  5. The schedule config survives a restart of every control-plane node.
func TestPD(t *testing.T) {
	begin := time.Now()
	c := framework.NewCluster(t, framework.WithNodes(3), framework.WithStores(3))
	ctx := testCtx(t, 5*time.Minute)
	fdbClient := framework.MultiCallBin(t, "flaredb-client")
	fdbServer := framework.MultiCallBin(t, "flaredb-server")
	pdAddr := strings.Join(c.Endpoints(), ",")
	t.Logf("cluster and stores ready after %v", time.Since(begin).Round(time.Millisecond))
	phase := func(name string) func() {
		start := time.Now()
		return func() { t.Logf("phase %q took %v", name, time.Since(start).Round(time.Millisecond)) }
	}

	// This test checks the store lifecycle as PD records it, with nothing
	// moving replicas (TestPDScaleOutRepairDrain covers scheduling), so
	// scheduling is halted before any store is added or removed.
	if code, body := pdDo(t, ctx, c.Node(0), http.MethodPost, "/config/schedule", `{"halt-scheduling":true}`); code != http.StatusOK {
		t.Fatalf("POST /config/schedule {halt-scheduling: true} = %d %s", code, body)
	}
	waitScheduleValue(t, ctx, c, "halt-scheduling", true, 10*time.Second)

	var s4, s5 *framework.Node
	t.Run("scale-out runbook adds store 4", func(t *testing.T) {
		defer phase("scale-out")()
		want := map[uint64]string{1: "Up", 2: "Up", 3: "Up"}
		waitStoreStates(t, ctx, c, "", want, 20*time.Second)

		// Step 1 and 2: flaredb.toml, started as flaredb-server --config.
		s, err := c.PrepareStore(framework.WithStoreID(4), framework.WithServerBin(fdbServer))
		if err != nil {
			t.Fatal(err)
		}
		cfg := fmt.Sprintf(runbookStoreConfig, 4, s.Endpoint(), s.DataDir(), tomlString(pdAddr))
		if err := os.WriteFile(s.ConfigPath(), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		must(t, s.Start())
		s4 = s
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := s.WaitLog(rctx, logRegistered+"4"); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitReady(rctx); err != nil {
			t.Fatalf("store /readyz after registering: %v", err)
		}
		for _, path := range []string{"/health", "/readyz"} {
			if code, body, err := s.Get(ctx, path); err != nil || code != http.StatusOK {
				t.Errorf("store 4 GET %s = %d %q, %v; want 200", path, code, body, err)
			}
		}

		// Step 3: curl /pd/api/v1/stores lists store 4, Up, on every
		// control-plane node, with its address and the sizes of its first
		// heartbeat.
		want[4] = "Up"
		waitStoreStates(t, ctx, c, "", want, 20*time.Second)
		framework.Eventually(t, func() error {
			for _, n := range c.Nodes() {
				l, err := n.PDStores(ctx, "")
				if err != nil {
					return err
				}
				st, _ := l.Find(4)
				switch {
				case st.Store.Address != s.Endpoint():
					return fmt.Errorf("%s: store 4 has address %q, want %q", n, st.Store.Address, s.Endpoint())
				case !sizeRE.MatchString(st.Status.Capacity) || !sizeRE.MatchString(st.Status.Available) || !sizeRE.MatchString(st.Status.UsedSize):
					return fmt.Errorf("%s: store 4 status capacity %q available %q used_size %q, want sizes like 1.819TiB", n, st.Status.Capacity, st.Status.Available, st.Status.UsedSize)
				case st.Status.LastHeartbeatTS == "":
					return fmt.Errorf("%s: store 4 has no last_heartbeat_ts", n)
				case st.Store.State != 0:
					return fmt.Errorf("%s: store 4 is Up but has state %d (omitted when Up)", n, st.Store.State)
				}
			}
			return nil
		}, 20*time.Second)
		// The runbook's `journalctl -u placement-driver | grep "store_id=4"`.
		if err := waitLogLine(c, 5*time.Second, "store_id=4"); err != nil {
			t.Errorf(`PD's registration log (scale-out runbook step 3: journalctl -u placement-driver -f | grep "store_id=4"): %v`, err)
		}

		// Step 4: cluster-status, through flaredb-client and centra.
		checkClusterStatus(t, "flaredb-client cluster-status", func() framework.CmdResult {
			return framework.RunBin(fdbClient, "--endpoint", "http://"+c.Node(0).Endpoint(), "cluster-status")
		}, want, 15*time.Second)
		checkClusterStatus(t, "centra flaredb cluster-status", func() framework.CmdResult {
			return framework.RunCLI("flaredb", "cluster-status", "--endpoint", c.Node(2).Endpoint())
		}, want, 15*time.Second)

		// Step 4: "Test write/read" on the new node, verbatim. Store 4 holds
		// no replica: it forwards the region lookups to PD and the client
		// goes to the region's leader.
		if r := framework.RunBin(fdbClient, "--endpoint", "http://"+s.Endpoint(), "put", "test-key", "test-value"); r.Err != nil || strings.TrimSpace(r.Stdout) != "OK" {
			t.Fatalf("flaredb-client put test-key test-value: %s", r)
		}
		if r := framework.RunBin(fdbClient, "--endpoint", "http://"+s.Endpoint(), "get", "test-key"); r.Err != nil || r.Stdout != "test-value\n" {
			t.Fatalf("flaredb-client get test-key = %q, want \"test-value\\n\": %s", r.Stdout, r)
		}
	})

	t.Run("PD API answers on every node", func(t *testing.T) {
		for _, n := range c.Nodes() {
			var health []struct {
				Name     string `json:"name"`
				MemberID uint64 `json:"member_id"`
				Health   bool   `json:"health"`
			}
			if err := n.PDGetJSON(ctx, "/health", &health); err != nil {
				t.Error(err)
			} else if len(health) != 3 {
				t.Errorf("%s: GET /health lists %d members, want 3: %+v", n, len(health), health)
			} else {
				for _, h := range health {
					if !h.Health {
						t.Errorf("%s: GET /health: member %s (%d) is not healthy", n, h.Name, h.MemberID)
					}
				}
			}
			var members pdMembers
			if err := n.PDGetJSON(ctx, "/members", &members); err != nil {
				t.Error(err)
			} else if len(members.Members) != 3 || members.Leader == nil {
				t.Errorf("%s: GET /members: %d members, leader %v; want 3 and a leader", n, len(members.Members), members.Leader)
			}
			var sched map[string]any
			if err := n.PDGetJSON(ctx, "/config/schedule", &sched); err != nil {
				t.Error(err)
			} else if sched["max-store-down-time"] != "30m0s" {
				t.Errorf("%s: GET /config/schedule: max-store-down-time = %#v, want the default \"30m0s\"", n, sched["max-store-down-time"])
			}
			var regions struct {
				Count   int   `json:"count"`
				Regions []any `json:"regions"`
			}
			if err := n.PDGetJSON(ctx, "/regions", &regions); err != nil {
				t.Error(err)
			} else if regions.Count != len(regions.Regions) {
				t.Errorf("%s: GET /regions: count %d but %d regions", n, regions.Count, len(regions.Regions))
			}
			var stats struct {
				Count *int `json:"count"`
			}
			if err := n.PDGetJSON(ctx, "/stats/region", &stats); err != nil {
				t.Error(err)
			} else if stats.Count == nil {
				t.Errorf("%s: GET /stats/region has no count", n)
			}
		}
	})

	t.Run("PD leader failover keeps the store list", func(t *testing.T) {
		defer phase("PD leader failover")()
		leader := c.Node(c.Leader(t))
		before, err := leader.PDStores(ctx, allStates)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("stores before the PD leader %s is killed: %s", leader, before.Summary())
		must(t, leader.Kill())
		newLeader := c.Node(c.Leader(t))
		t.Logf("new PD leader: %s", newLeader)
		// GET /members names the new shard-0 leader as PD's leader.
		framework.Eventually(t, func() error {
			for _, n := range c.Running() {
				var m pdMembers
				if err := n.PDGetJSON(ctx, "/members", &m); err != nil {
					return err
				}
				if m.Leader == nil || m.Leader.MemberID != newLeader.ID {
					return fmt.Errorf("%s: GET /members: leader %+v, want member %d", n, m.Leader, newLeader.ID)
				}
			}
			return nil
		}, 10*time.Second)
		// Every survivor answers the same ids, states and addresses.
		framework.Eventually(t, func() error {
			for _, n := range c.Running() {
				l, err := n.PDStores(ctx, allStates)
				if err != nil {
					return err
				}
				if l.Summary() != before.Summary() {
					return fmt.Errorf("%s after the PD leader was killed: %s, want %s", n, l.Summary(), before.Summary())
				}
			}
			return nil
		}, 20*time.Second)
		// The killed node comes back and answers the same too.
		must(t, leader.Restart())
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := leader.WaitReady(rctx); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, func() error {
			l, err := leader.PDStores(ctx, allStates)
			if err != nil {
				return err
			}
			if l.Summary() != before.Summary() {
				return fmt.Errorf("%s after its restart: %s, want %s", leader, l.Summary(), before.Summary())
			}
			return nil
		}, 20*time.Second)
	})

	done := phase("store failures")
	t.Run("store failures", func(t *testing.T) {
		t.Run("killed store goes Disconnected then Down", func(t *testing.T) {
			t.Parallel()
			n := c.Node(0)
			code, body := pdDo(t, ctx, n, http.MethodPost, "/config/schedule", `{"max-store-down-time":"25s"}`)
			if code != http.StatusOK {
				t.Fatalf("POST /config/schedule {max-store-down-time: 25s} = %d %s", code, body)
			}
			wantJSONString(t, "POST /config/schedule", body)
			waitScheduleValue(t, ctx, c, "max-store-down-time", "25s", 10*time.Second)
			// A bad key is refused and changes nothing.
			code, body = pdDo(t, ctx, c.Node(1), http.MethodPost, "/config/schedule", `{"max-store-down-time":"20s","no-such-key":1}`)
			if code != http.StatusBadRequest {
				t.Errorf("POST /config/schedule with an unknown key = %d %s, want 400", code, body)
			}
			wantJSONString(t, "POST /config/schedule with an unknown key", body)
			waitScheduleValue(t, ctx, c, "max-store-down-time", "25s", 5*time.Second)

			victim := c.Store(2)
			id := victim.StoreID()
			must(t, victim.Kill())
			killed := time.Now()
			// Heartbeats come every 10 s, so the last one was at most
			// 10 s before the kill: Disconnected 20 s after it, Down 25 s
			// after it.
			waitStoreState(t, ctx, c, id, "Disconnected", 45*time.Second)
			disc := time.Since(killed)
			waitStoreState(t, ctx, c, id, "Down", 45*time.Second-disc)
			down := time.Since(killed)
			t.Logf("store %d: Disconnected %v and Down %v after SIGKILL", id, disc.Round(100*time.Millisecond), down.Round(100*time.Millisecond))
			if disc < 9*time.Second {
				t.Errorf("store %d went Disconnected %v after SIGKILL: want 20 s after its last heartbeat (heartbeats every 10 s)", id, disc)
			}
			if gap := down - disc; gap < 3500*time.Millisecond || gap > 8*time.Second {
				t.Errorf("store %d went Down %v after Disconnected: want about 5 s (max-store-down-time 25s minus the 20 s to Disconnected)", id, gap)
			}
			if down < 14*time.Second {
				t.Errorf("store %d went Down %v after SIGKILL: want max-store-down-time (25s) after its last heartbeat", id, down)
			}
			// The PD leader's metrics (the alert rule of the
			// troubleshooting runbook: flaredb_store_state == 0).
			framework.Eventually(t, func() error {
				leader := c.Node(c.Leader(t))
				code, body, err := leader.Get(ctx, "/metrics")
				if err != nil || code != http.StatusOK {
					return fmt.Errorf("%s GET /metrics: %d, %v", leader, code, err)
				}
				for _, want := range []string{
					fmt.Sprintf(`flaredb_store_state{store_id="%d"} 0`, id),
					`flaredb_store_state{store_id="2"} 1`,
					`pd_store_count{state="Down"} 1`,
				} {
					if !strings.Contains(body, want+"\n") {
						return fmt.Errorf("%s /metrics has no line %q", leader, want)
					}
				}
				return nil
			}, 10*time.Second)
			r := framework.RunBin(fdbClient, "--endpoint", "http://"+c.Node(1).Endpoint(), "cluster-status")
			lines, err := clusterStatus(r)
			if err != nil {
				t.Fatal(err)
			}
			if lines[id][0] != "Down" {
				t.Errorf("cluster-status shows store %d as %q, want Down:\n%s", id, lines[id][0], r.Stdout)
			}
		})

		t.Run("duplicate store_id is refused", func(t *testing.T) {
			t.Parallel()
			if s4 == nil {
				t.Skip("store 4 did not start")
			}
			dup, err := c.PrepareStore(framework.WithStoreID(4), framework.WithServerBin(fdbServer))
			if err != nil {
				t.Fatal(err)
			}
			cfg := fmt.Sprintf(runbookStoreConfig, 4, dup.Endpoint(), dup.DataDir(), tomlArray(c.Endpoints()))
			if err := os.WriteFile(dup.ConfigPath(), []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, err := dup.StartExpectingExit(30 * time.Second)
			if err != nil {
				t.Fatalf("a second store_id 4 at %s: %v; its log:\n%s", dup.Endpoint(), err, out)
			}
			if code == 0 {
				t.Errorf("a second store_id 4 at %s exited 0, want non-zero; its log:\n%s", dup.Endpoint(), out)
			}
			if !strings.Contains(out, dup.Endpoint()) || !strings.Contains(out, s4.Endpoint()) {
				t.Errorf("the refused store's error should name both addresses (%s, and %s that holds store_id 4); its log:\n%s", dup.Endpoint(), s4.Endpoint(), out)
			}
			// PD logs the refusal too, naming both addresses.
			if err := waitLogLine(c, 5*time.Second, dup.Endpoint(), s4.Endpoint()); err != nil {
				t.Errorf("PD side of the refusal of store_id 4 at %s (held by %s): %v", dup.Endpoint(), s4.Endpoint(), err)
			}
			l, err := c.Node(0).PDStores(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if st, _ := l.Find(4); st.Store.Address != s4.Endpoint() || st.Store.StateName != "Up" {
				t.Errorf("after the refusal PD has store 4 at %q in %q, want %s Up", st.Store.Address, st.Store.StateName, s4.Endpoint())
			}

			// Troubleshooting runbook: change store_id, and wipe the data
			// (it holds the old store_id), then restart. Without the wipe
			// the data directory still claims store_id 4.
			must(t, dup.SetStoreID(5))
			code, out, err = dup.StartExpectingExit(30 * time.Second)
			if err != nil || code == 0 {
				t.Errorf("store_id 5 on the data directory of store_id 4 (not wiped): exit %d, %v; want a refusal; its log:\n%s", code, err, out)
			}
			must(t, dup.WipeData())
			must(t, dup.Start())
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := dup.WaitLog(rctx, logRegistered+"5"); err != nil {
				t.Fatal(err)
			}
			if err := dup.WaitReady(rctx); err != nil {
				t.Fatal(err)
			}
			waitStoreState(t, ctx, c, 5, "Up", 20*time.Second)
			st, err := c.Node(2).PDStore(ctx, 5)
			if err != nil {
				t.Fatal(err)
			}
			if st.Store.Address != dup.Endpoint() {
				t.Errorf("store 5 has address %q, want %s", st.Store.Address, dup.Endpoint())
			}
			s5 = dup
		})

		t.Run("restarted store keeps its id", func(t *testing.T) {
			t.Parallel()
			s := c.Store(0)
			must(t, s.Restart())
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := s.WaitLog(rctx, logRegistered+"1"); err != nil {
				t.Fatal(err)
			}
			if err := s.WaitReady(rctx); err != nil {
				t.Fatal(err)
			}
			l, err := c.Node(1).PDStores(ctx, allStates)
			if err != nil {
				t.Fatal(err)
			}
			var ids []uint64
			for _, st := range l.Stores {
				if st.Store.Address == s.Endpoint() {
					ids = append(ids, st.Store.ID)
				}
			}
			if !slices.Equal(ids, []uint64{1}) {
				t.Errorf("after the restart PD lists store_ids %v at %s, want [1]: %s", ids, s.Endpoint(), l.Summary())
			}
			waitStoreState(t, ctx, c, 1, "Up", 10*time.Second)
		})
	})
	done()

	t.Run("delete store", func(t *testing.T) {
		defer phase("delete store")()
		if s4 == nil || s5 == nil {
			t.Skip("stores 4 and 5 are not both up")
		}
		down := c.Store(2).StoreID() // killed above, Down
		// Up: 1, 2, 4, 5; Down: 3. Deletes go to followers and the leader
		// alike.
		del := func(n *framework.Node, id uint64, query string) (int, string) {
			path := fmt.Sprintf("/store/%d%s", id, query)
			code, body := pdDo(t, ctx, n, http.MethodDelete, path, "")
			t.Logf("DELETE %s on %s: %d %s", path, n, code, strings.TrimSpace(body))
			wantJSONString(t, "DELETE "+path, body)
			return code, body
		}
		// buried waits until store id is Tombstone, having passed through
		// Offline or gone there at once (it holds no region).
		buried := func(id uint64) {
			t.Helper()
			var seen []string
			framework.Eventually(t, func() error {
				s, err := c.Node(0).PDStore(ctx, id)
				if err != nil {
					return err
				}
				if len(seen) == 0 || seen[len(seen)-1] != s.Store.StateName {
					seen = append(seen, s.Store.StateName)
				}
				if st := s.Store.StateName; st != "Offline" && st != "Tombstone" {
					return fmt.Errorf("store %d is %q after DELETE, want Offline then Tombstone (states seen: %v)", id, st, seen)
				}
				if s.Store.StateName != "Tombstone" {
					return fmt.Errorf("store %d is still %q (states seen: %v)", id, s.Store.StateName, seen)
				}
				if s.Store.State != 2 || s.Store.NodeState != 3 {
					t.Errorf("Tombstone store %d has state %d, node_state %d; want 2 (Tombstone), 3 (Removed)", id, s.Store.State, s.Store.NodeState)
				}
				return nil
			}, 20*time.Second)
			t.Logf("store %d after DELETE: %v", id, seen)
		}

		// Troubleshooting runbook: remove the Down store. It holds a peer of
		// the bootstrap region, so it stays Offline until the region's
		// replica moves (scheduling is halted in this test).
		if code, body := del(c.Node(1), down, ""); code != http.StatusOK {
			t.Fatalf("DELETE the Down store %d = %d %s, want 200", down, code, body)
		}
		waitStoreState(t, ctx, c, down, "Offline", 10*time.Second)
		// 4 Up stores: removing one leaves 3 = max-replicas.
		if code, body := del(c.Node(2), 5, ""); code != http.StatusOK {
			t.Fatalf("DELETE store 5 of 4 Up stores = %d %s, want 200", code, body)
		}
		buried(5)
		// 3 Up stores: removing one would leave 2 < max-replicas.
		if code, body := del(c.Node(0), 4, ""); code != http.StatusBadRequest {
			t.Errorf("DELETE store 4 of 3 Up stores = %d %s, want 400", code, body)
		}
		if s, err := c.Node(1).PDStore(ctx, 4); err != nil || s.Store.StateName != "Up" {
			t.Errorf("store 4 after the refused DELETE: %q, %v; want Up", s.Store.StateName, err)
		}
		if code, body := del(c.Node(1), 5, ""); code != http.StatusGone {
			t.Errorf("DELETE of the Tombstone store 5 = %d %s, want 410", code, body)
		}
		if code, body := del(c.Node(1), 99, ""); code != http.StatusNotFound {
			t.Errorf("DELETE of unknown store 99 = %d %s, want 404", code, body)
		}
		// ?force: the store is gone for good; the replica check is skipped.
		if code, body := del(c.Node(2), 4, "?force"); code != http.StatusOK {
			t.Errorf("DELETE store 4?force = %d %s, want 200", code, body)
		}
		buried(4)

		// Tombstones are hidden unless asked for.
		waitStoreStates(t, ctx, c, "", map[uint64]string{1: "Up", 2: "Up", down: "Offline"}, 10*time.Second)
		waitStoreStates(t, ctx, c, "state=2", map[uint64]string{4: "Tombstone", 5: "Tombstone"}, 10*time.Second)
		all := map[uint64]string{1: "Up", 2: "Up", down: "Offline", 4: "Tombstone", 5: "Tombstone"}
		waitStoreStates(t, ctx, c, allStates, all, 10*time.Second)
		checkClusterStatus(t, "flaredb-client cluster-status", func() framework.CmdResult {
			return framework.RunBin(fdbClient, "--endpoint", "http://"+c.Node(1).Endpoint(), "cluster-status")
		}, all, 10*time.Second)
		// The buried stores' processes are stopped (cleanly).
		must(t, s5.Stop())
		must(t, s4.Stop())
	})

	t.Run("schedule config survives a full control-plane restart", func(t *testing.T) {
		defer phase("full restart")()
		before, err := c.Node(0).PDStores(ctx, allStates)
		if err != nil {
			t.Fatal(err)
		}
		sched, err := scheduleConfig(ctx, c.Node(0))
		if err != nil {
			t.Fatal(err)
		}
		if sched["max-store-down-time"] != "25s" {
			t.Errorf("before the restart max-store-down-time = %#v, want the posted \"25s\"", sched["max-store-down-time"])
		}
		witness := c.Store(1) // store 2, running
		failures := strings.Count(witness.CurrentLog(), logHeartbeatFailed)

		var wg sync.WaitGroup
		errs := make([]error, len(c.Nodes()))
		for i, n := range c.Nodes() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = n.Stop()
			}()
		}
		wg.Wait()
		for _, err := range errs {
			must(t, err)
		}
		// With no PD to answer, the store says so (troubleshooting
		// runbook's warning sign) and keeps trying.
		framework.Eventually(t, func() error {
			if strings.Count(witness.CurrentLog(), logHeartbeatFailed) <= failures {
				return fmt.Errorf("%s has not logged %q since the control plane stopped", witness, logHeartbeatFailed)
			}
			return nil
		}, 20*time.Second)

		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		must(t, c.RestartAll(rctx))
		waitScheduleValue(t, ctx, c, "max-store-down-time", "25s", 20*time.Second)
		// The stores and their persisted states (Up, Offline, Tombstone)
		// are back on every node. (Disconnected and Down are not
		// persisted: the new PD leader gives every store a fresh grace
		// period, as TiKV PD does.)
		framework.Eventually(t, func() error {
			for _, n := range c.Running() {
				l, err := n.PDStores(ctx, allStates)
				if err != nil {
					return err
				}
				if got, want := storedStates(l), storedStates(before); !maps.Equal(got, want) {
					return fmt.Errorf("%s after the restart: %s, want %s as before", n, statesString(got), statesString(want))
				}
			}
			return nil
		}, 20*time.Second)
		// The stores heartbeat to the restarted PD again.
		failures = strings.Count(witness.CurrentLog(), logHeartbeatFailed)
		hb, err := c.Node(0).PDStore(ctx, witness.StoreID())
		if err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, func() error {
			st, err := c.Node(0).PDStore(ctx, witness.StoreID())
			if err != nil {
				return err
			}
			if st.Status.LastHeartbeatTS == hb.Status.LastHeartbeatTS {
				return fmt.Errorf("store %d: no heartbeat since the restart (last_heartbeat_ts %s)", witness.StoreID(), hb.Status.LastHeartbeatTS)
			}
			return nil
		}, 25*time.Second)
		if n := strings.Count(witness.CurrentLog(), logHeartbeatFailed); n > failures {
			t.Logf("%s logged %d more heartbeat failures while PD came back", witness, n-failures)
		}
	})
	t.Logf("TestPD took %v", time.Since(begin).Round(time.Millisecond))
}
