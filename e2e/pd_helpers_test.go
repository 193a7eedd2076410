//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// runbookStoreConfig is Step 1 of the FlareDB scale-out runbook
// (runbooks/scale-out.md) verbatim, comments included, with this test's
// store_id, address, data directory and PD endpoints (pd_addr's value is
// TOML: a quoted string or an array). The optional [tls] section is left
// out: the cluster runs without TLS. addr is on loopback rather than
// 0.0.0.0 because it is also the address the store registers under.
const runbookStoreConfig = `store_id = %d # NEW STORE ID (must be unique)
addr = "%s"
data_dir = "%s"
pd_addr = %s # Placement Driver address
log_level = "info"
[peers]
# Empty for new node - will be populated by PD
[namespace_modes]
default = "eventual" # or "strong"
`

// Log lines of the store agent (troubleshooting runbook, "healthy
// operation" and "warning signs").
const (
	logRegistered      = "Registered with PD, store_id="
	logHeartbeatFailed = "Heartbeat to PD failed, retrying..."
)

// allStates asks GET /pd/api/v1/stores for every state, Tombstone
// included.
const allStates = "state=0&state=1&state=2"

// sizeRE is a PD status size: go-units BytesSize, binary units, 4
// significant digits ("1.819TiB", "96MiB", "0B").
var sizeRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(B|KiB|MiB|GiB|TiB|PiB|EiB)$`)

// clusterStatusRE is one line of `cluster-status`, as the runbook shows it
// (store_id=4, state=Up, capacity=..., available=...), optionally followed
// by more ", key=value" fields.
var clusterStatusRE = regexp.MustCompile(`^store_id=([0-9]+), state=([A-Za-z]+), capacity=([^,]*), available=([^,]*)(, .*)?$`)

// tomlString is s as a TOML basic string.
func tomlString(s string) string { return strconv.Quote(s) }

// tomlArray is ss as a TOML array of strings.
func tomlArray(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// statesString renders store_id -> state sorted by id.
func statesString(m map[uint64]string) string {
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d=%s", id, m[id]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// pdMembers is GET /pd/api/v1/members.
type pdMembers struct {
	Members []struct {
		Name     string `json:"name"`
		MemberID uint64 `json:"member_id"`
	} `json:"members"`
	Leader *struct {
		Name     string `json:"name"`
		MemberID uint64 `json:"member_id"`
	} `json:"leader"`
}

// storedStates returns store_id -> the persisted state (metapb.StoreState:
// Up, Offline, Tombstone), which state_name refines with Disconnected and
// Down.
func storedStates(l framework.PDStoreList) map[uint64]string {
	names := map[int]string{0: "Up", 1: "Offline", 2: "Tombstone"}
	m := map[uint64]string{}
	for _, s := range l.Stores {
		name, ok := names[s.Store.State]
		if !ok {
			name = strconv.Itoa(s.Store.State)
		}
		m[s.Store.ID] = name
	}
	return m
}

// waitStoreStates waits until every running control-plane node answers
// GET /pd/api/v1/stores?query with exactly the stores of want, in those
// states. It returns the last list of the first node.
func waitStoreStates(t *testing.T, ctx context.Context, c *framework.Cluster, query string, want map[uint64]string, timeout time.Duration) framework.PDStoreList {
	t.Helper()
	var first framework.PDStoreList
	framework.Eventually(t, func() error {
		for i, n := range c.Running() {
			l, err := n.PDStores(ctx, query)
			if err != nil {
				return err
			}
			if got := l.States(); !maps.Equal(got, want) {
				return fmt.Errorf("%s: GET /stores?%s: stores %s, want %s", n, query, statesString(got), statesString(want))
			}
			if i == 0 {
				first = l
			}
		}
		return nil
	}, timeout)
	return first
}

// waitStoreState waits until every running control-plane node shows store
// id in state (GET /pd/api/v1/store/{id}) and returns how long it took.
func waitStoreState(t *testing.T, ctx context.Context, c *framework.Cluster, id uint64, state string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	framework.Eventually(t, func() error {
		for _, n := range c.Running() {
			s, err := n.PDStore(ctx, id)
			if err != nil {
				return err
			}
			if s.Store.StateName != state {
				return fmt.Errorf("%s: store %d is %q, want %q", n, id, s.Store.StateName, state)
			}
		}
		return nil
	}, timeout)
	return time.Since(start)
}

// clusterStatus parses `cluster-status` output into store_id -> line
// fields (state, capacity, available) and checks the format.
func clusterStatus(r framework.CmdResult) (map[uint64][3]string, error) {
	if r.Err != nil {
		return nil, fmt.Errorf("cluster-status failed: %s", r)
	}
	out := map[uint64][3]string{}
	for _, line := range strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n") {
		m := clusterStatusRE.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("cluster-status line %q is not `store_id=N, state=S, capacity=C, available=A`; output:\n%s", line, r.Stdout)
		}
		id, _ := strconv.ParseUint(m[1], 10, 64)
		out[id] = [3]string{m[2], m[3], m[4]}
	}
	return out, nil
}

// checkClusterStatus runs cluster-status (run) until it lists exactly the
// stores of want in those states, with sizes for the Up ones.
func checkClusterStatus(t *testing.T, what string, run func() framework.CmdResult, want map[uint64]string, timeout time.Duration) {
	t.Helper()
	framework.Eventually(t, func() error {
		r := run()
		lines, err := clusterStatus(r)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		got := map[uint64]string{}
		for id, f := range lines {
			got[id] = f[0]
			if f[0] == "Up" && (!sizeRE.MatchString(f[1]) || !sizeRE.MatchString(f[2])) {
				return fmt.Errorf("%s: store %d: capacity %q, available %q are not sizes like 1.819TiB:\n%s", what, id, f[1], f[2], r.Stdout)
			}
		}
		if !maps.Equal(got, want) {
			return fmt.Errorf("%s: stores %s, want %s; output:\n%s", what, statesString(got), statesString(want), r.Stdout)
		}
		return nil
	}, timeout)
}

// pdDo sends a PD API request to n and returns the status and body.
func pdDo(t *testing.T, ctx context.Context, n *framework.Node, method, path, body string) (int, string) {
	t.Helper()
	code, resp, err := n.Do(ctx, method, framework.PDPrefix+path, body)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, n, err)
	}
	return code, resp
}

// wantJSONString checks that body is a bare JSON string (PD's answer to a
// mutating request and its error format) and returns it.
func wantJSONString(t *testing.T, what, body string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Errorf("%s: body %q is not a JSON string: %v", what, body, err)
	}
	return s
}

// scheduleConfig returns GET /pd/api/v1/config/schedule of n.
func scheduleConfig(ctx context.Context, n *framework.Node) (map[string]any, error) {
	var m map[string]any
	err := n.PDGetJSON(ctx, "/config/schedule", &m)
	return m, err
}

// waitScheduleValue waits until every running control-plane node shows
// key = want in GET /config/schedule.
func waitScheduleValue(t *testing.T, ctx context.Context, c *framework.Cluster, key string, want any, timeout time.Duration) {
	t.Helper()
	framework.Eventually(t, func() error {
		for _, n := range c.Running() {
			m, err := scheduleConfig(ctx, n)
			if err != nil {
				return err
			}
			if m[key] != want {
				return fmt.Errorf("%s: config/schedule %s = %#v, want %#v", n, key, m[key], want)
			}
		}
		return nil
	}, timeout)
}

// waitLogLine waits until some control-plane node's current log has a
// line containing every one of substrs.
func waitLogLine(c *framework.Cluster, timeout time.Duration, substrs ...string) error {
	return framework.WaitFor(func() error {
		for _, n := range c.Nodes() {
			for _, line := range strings.Split(n.CurrentLog(), "\n") {
				ok := true
				for _, s := range substrs {
					ok = ok && strings.Contains(line, s)
				}
				if ok {
					return nil
				}
			}
		}
		return fmt.Errorf("no control-plane node logged a line containing %q", substrs)
	}, timeout)
}
