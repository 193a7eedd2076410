//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestZeroConfigSingleNode runs `centra serve` with no arguments in an empty
// directory and talks to it on the default endpoint with the centra CLI and
// with etcdctl.
func TestZeroConfigSingleNode(t *testing.T) {
	if busy, err := framework.PortsFree(framework.DevAPIAddr, framework.DevRaftAddr); err != nil {
		t.Skipf("zero-config centra listens on %s and %s, but %s is busy here (%v); stop whatever uses it to run this test",
			framework.DevAPIAddr, framework.DevRaftAddr, busy, err)
	}
	etcdctl := framework.EtcdctlBin(t) // build before the node starts
	c := framework.NewCluster(t, framework.WithDevMode())
	n := c.Node(0)
	ep := "--endpoints=" + framework.DevAPIAddr

	t.Run("data in ./centra-data", func(t *testing.T) {
		for _, sub := range []string{"raft", "state"} {
			if _, err := os.Stat(filepath.Join(n.Dir(), "centra-data", sub)); err != nil {
				t.Errorf("zero-config data directory: %v", err)
			}
		}
	})

	t.Run("centra kv on the default endpoint", func(t *testing.T) {
		if r := framework.RunCLI("kv", "put", "foo", "bar"); r.Err != nil || r.Stdout != "OK\n" {
			t.Fatalf("centra kv put foo bar: want OK, got %s", r)
		}
		if r := framework.RunCLI("kv", "get", "foo"); r.Err != nil || r.Stdout != "bar\n" {
			t.Fatalf("centra kv get foo: want bar, got %s", r)
		}
	})

	// The dev node is also a FlareDB store (PD's max-replicas is 1): the
	// README's `centra flaredb put k v` / `get k` work with no config.
	t.Run("centra flaredb on the default endpoint", func(t *testing.T) {
		if r := framework.RunCLI("flaredb", "put", "k", "v"); r.Err != nil || r.Stdout != "OK\n" {
			t.Fatalf("centra flaredb put k v: want OK, got %s", r)
		}
		if r := framework.RunCLI("flaredb", "get", "k"); r.Err != nil || r.Stdout != "v\n" {
			t.Fatalf("centra flaredb get k: want v, got %s", r)
		}
	})

	t.Run("etcdctl put get", func(t *testing.T) {
		if r := framework.RunEtcdctl(t, ep, "put", "ek", "ev"); r.Err != nil || r.Stdout != "OK\n" {
			t.Fatalf("etcdctl put: %s", r)
		}
		if r := framework.RunEtcdctl(t, ep, "get", "ek"); r.Err != nil || r.Stdout != "ek\nev\n" {
			t.Fatalf("etcdctl get ek: want \"ek\\nev\\n\", got %s", r)
		}
		// The key the centra CLI wrote.
		if r := framework.RunEtcdctl(t, ep, "get", "foo", "--print-value-only"); r.Err != nil || r.Stdout != "bar\n" {
			t.Fatalf("etcdctl get foo: want bar, got %s", r)
		}
		if r := framework.RunEtcdctl(t, ep, "del", "ek"); r.Err != nil || r.Stdout != "1\n" {
			t.Fatalf("etcdctl del ek: want 1, got %s", r)
		}
		if r := framework.RunEtcdctl(t, ep, "get", "ek"); r.Err != nil || r.Stdout != "" {
			t.Fatalf("etcdctl get ek after del: want nothing, got %s", r)
		}
	})

	t.Run("etcdctl watch", func(t *testing.T) {
		r := framework.RunEtcdctl(t, ep, "put", "wk", "v1", "-w", "json")
		if r.Err != nil {
			t.Fatalf("etcdctl put: %s", r)
		}
		var put struct {
			Header struct {
				Revision int64 `json:"revision"`
			} `json:"header"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &put); err != nil || put.Header.Revision == 0 {
			t.Fatalf("etcdctl put -w json: no header.revision (%v) in %q", err, r.Stdout)
		}
		// Watching from the put's revision delivers it at once, which also
		// proves the watch is established before the second put.
		lines := startLines(t, etcdctl, ep, "watch", "wk", "--rev", itoa(put.Header.Revision))
		expectLines(t, lines, "PUT", "wk", "v1")
		if r := framework.RunEtcdctl(t, ep, "put", "wk", "v2"); r.Err != nil {
			t.Fatalf("etcdctl put: %s", r)
		}
		expectLines(t, lines, "PUT", "wk", "v2")
	})

	t.Run("etcdctl lease", func(t *testing.T) {
		r := framework.RunEtcdctl(t, ep, "lease", "grant", "60")
		m := regexp.MustCompile(`^lease ([0-9a-f]+) granted with TTL\(60s\)\n$`).FindStringSubmatch(r.Stdout)
		if r.Err != nil || m == nil {
			t.Fatalf("etcdctl lease grant 60: %s", r)
		}
		id := m[1]
		if r := framework.RunEtcdctl(t, ep, "put", "--lease="+id, "lk", "lv"); r.Err != nil || r.Stdout != "OK\n" {
			t.Fatalf("etcdctl put --lease: %s", r)
		}
		if r := framework.RunEtcdctl(t, ep, "lease", "keep-alive", "--once", id); r.Err != nil ||
			!strings.Contains(r.Stdout, "lease "+id+" keepalived with TTL(60)") {
			t.Fatalf("etcdctl lease keep-alive --once: %s", r)
		}
		r = framework.RunEtcdctl(t, ep, "lease", "timetolive", id, "--keys")
		if r.Err != nil || !regexp.MustCompile(`^lease `+id+` granted with TTL\(60s\), remaining\((\d+)s\), attached keys\(\[lk\]\)\n$`).MatchString(r.Stdout) {
			t.Fatalf("etcdctl lease timetolive --keys: %s", r)
		}
		if r := framework.RunEtcdctl(t, ep, "lease", "list"); r.Err != nil || !strings.Contains(r.Stdout, id) {
			t.Errorf("etcdctl lease list: want %s listed, got %s", id, r)
		}
		if r := framework.RunEtcdctl(t, ep, "lease", "revoke", id); r.Err != nil || r.Stdout != "lease "+id+" revoked\n" {
			t.Fatalf("etcdctl lease revoke: %s", r)
		}
		if r := framework.RunEtcdctl(t, ep, "get", "lk"); r.Err != nil || r.Stdout != "" {
			t.Fatalf("etcdctl get lk after revoke: want nothing, got %s", r)
		}
		if r := framework.RunEtcdctl(t, ep, "lease", "timetolive", id); r.Err != nil || r.Stdout != "lease "+id+" already expired\n" {
			t.Errorf("etcdctl lease timetolive after revoke: %s", r)
		}
	})

	t.Run("etcdctl endpoint status and member list", func(t *testing.T) {
		r := framework.RunEtcdctl(t, ep, "endpoint", "status", "-w", "json")
		var st []struct {
			Endpoint string `json:"Endpoint"`
			Status   struct {
				Leader uint64 `json:"leader"`
			} `json:"Status"`
		}
		if r.Err != nil || json.Unmarshal([]byte(r.Stdout), &st) != nil || len(st) != 1 || st[0].Status.Leader == 0 {
			t.Errorf("etcdctl endpoint status -w json: want one endpoint with a leader, got %s", r)
		}
		if r := framework.RunEtcdctl(t, ep, "endpoint", "health"); r.Err != nil || !strings.Contains(r.Stdout+r.Stderr, "is healthy") {
			t.Errorf("etcdctl endpoint health: %s", r)
		}
		if r := framework.RunEtcdctl(t, ep, "member", "list"); r.Err != nil || !strings.Contains(r.Stdout, "centra-1") || !strings.Contains(r.Stdout, "http://127.0.0.1:2379") {
			t.Errorf("etcdctl member list: want centra-1 with client URL http://127.0.0.1:2379, got %s", r)
		}
	})
}

// startLines starts a long-running command (etcdctl watch) and returns its
// stdout lines; the process is killed when the test ends.
func startLines(t *testing.T, bin string, args ...string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("%s %v stderr:\n%s", filepath.Base(bin), args, stderr.String())
		}
	})
	return lines
}

// expectLines reads len(want) lines and compares them with want.
func expectLines(t *testing.T, lines <-chan string, want ...string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for i, w := range want {
		select {
		case got, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before line %d (want %q)", i, w)
			}
			if got != w {
				t.Fatalf("line %d: got %q, want %q", i, got, w)
			}
		case <-timeout:
			t.Fatalf("no line %d (want %q) within 10s", i, w)
		}
	}
}
