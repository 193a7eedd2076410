//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// httpEndpoint is the runbooks' --endpoint spelling of n's API address.
func httpEndpoint(n *framework.Node) string { return "http://" + n.Endpoint() }

// statusLines parses `status` output ("key: value" lines) into a map.
func statusLines(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// cliStatus runs `centra cluster status` against endpoint and parses it.
func cliStatus(endpoint string) (map[string]string, error) {
	return cliStatusWith(framework.RunCLI, endpoint)
}

// cliRun runs the centra CLI: framework.RunCLI, or (on a TLS cluster) the
// binary with the TLS material in its environment (centraWithEnv).
type cliRun func(args ...string) framework.CmdResult

// centraWithEnv runs the centra CLI with env (e.g. Cluster.TLSEnv) added.
func centraWithEnv(env []string) cliRun {
	return func(args ...string) framework.CmdResult {
		return framework.RunBinEnv(framework.CentraBin(), env, args...)
	}
}

// cliStatusWith is cliStatus through run.
func cliStatusWith(run cliRun, endpoint string) (map[string]string, error) {
	r := run("cluster", "status", "--endpoint", endpoint)
	if r.Err != nil {
		return nil, fmt.Errorf("status --endpoint %s: %s", endpoint, r)
	}
	return statusLines(r.Stdout), nil
}

// statusUint returns the numeric status field key.
func statusUint(st map[string]string, key string) (uint64, error) {
	v, ok := st[key]
	if !ok {
		return 0, fmt.Errorf("status has no %q line: %v", key, st)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("status %s: %q is not a number", key, v)
	}
	return n, nil
}

// memberLine is one line of the runbook's member-list output.
func memberLine(id uint64, name, peer string, learner bool) string {
	return fmt.Sprintf("ID=%d, Name=%s, PeerURLs=[%s], IsLearner=%t", id, name, peer, learner)
}

// memberList runs `centra cluster member-list` against endpoint and
// returns its lines, sorted.
func memberList(endpoint string) ([]string, error) {
	return memberListWith(framework.RunCLI, endpoint)
}

// memberListWith is memberList through run.
func memberListWith(run cliRun, endpoint string) ([]string, error) {
	r := run("cluster", "member-list", "--endpoint", endpoint)
	if r.Err != nil {
		return nil, fmt.Errorf("member-list --endpoint %s: %s", endpoint, r)
	}
	lines := strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n")
	slices.Sort(lines)
	return lines, nil
}

// waitMembers waits until member-list at endpoint shows exactly want (in
// any order).
func waitMembers(t *testing.T, endpoint string, want []string, timeout time.Duration) {
	t.Helper()
	waitMembersWith(t, framework.RunCLI, endpoint, want, timeout)
}

// waitMembersWith is waitMembers through run.
func waitMembersWith(t *testing.T, run cliRun, endpoint string, want []string, timeout time.Duration) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	framework.Eventually(t, func() error {
		got, err := memberListWith(run, endpoint)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("member-list at %s:\n%s\nwant:\n%s", endpoint, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		return nil
	}, timeout)
}

// bootMembers returns the member-list lines of c's first k nodes (all
// voters, named by the framework).
func bootMembers(c *framework.Cluster, k int) []string {
	var out []string
	for _, n := range c.Nodes()[:k] {
		out = append(out, memberLine(n.ID, n.Name, n.RaftAddr(), false))
	}
	return out
}

// wantError checks the CLI's one-line failure and that stderr mentions one
// of the substrings.
func wantError(t *testing.T, what string, r framework.CmdResult, substrs ...string) {
	t.Helper()
	oneLineError(t, what, r)
	for _, s := range substrs {
		if strings.Contains(r.Stderr, s) {
			return
		}
	}
	t.Errorf("%s: error should mention %q: %s", what, substrs, r)
}
