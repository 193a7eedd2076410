//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestDebugCheck runs `centra debug check` on the data directory of a real
// node: exit 2 with "stop the node first" while it runs; exit 0 once it is
// stopped (also as the runbook's `rocksdb_ldb --db=DIR checkconsistency`);
// exit 1 naming the file on copies with a table file corrupted in the
// middle or truncated; `debug repair` lists leftovers without --yes and
// removes them with it, after which the check still passes.
func TestDebugCheck(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(1))
	n := c.Node(0)
	ctx := testCtx(t, 2*time.Minute)
	cli := c.Client(t)
	for i := range 300 {
		if _, err := cli.Put(ctx, fmt.Sprintf("check/%03d", i%100), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
	// Defragment compacts, which flushes the memtable into table files.
	if _, err := cli.Defragment(ctx, n.Endpoint()); err != nil {
		t.Fatal(err)
	}
	dir := n.DataDir()
	r := framework.RunCLI("debug", "check", "--data-dir", dir)
	if r.ExitCode() != 2 || !strings.Contains(r.Stderr, "stop the node first") {
		t.Fatalf("check of a running node: want exit 2 and \"stop the node first\":\n%s", r)
	}
	must(t, n.Stop())

	r = framework.RunCLI("debug", "check", "--data-dir", dir)
	if r.ExitCode() != 0 || !strings.Contains(r.Stdout, "All checks passed.") || strings.Contains(r.Stdout, "FAIL") ||
		!strings.Contains(r.Stdout, "OK    chainfire mvcc") || !strings.Contains(r.Stdout, "OK    raft log 0") || !strings.Contains(r.Stdout, "OK    applied 0") {
		t.Fatalf("check of a clean stopped node: want exit 0 and every check OK:\n%s", r)
	}
	links := t.TempDir()
	if r := framework.RunCLI("install-links", links); r.Err != nil {
		t.Fatalf("install-links: %s", r)
	}
	out, err := exec.Command(filepath.Join(links, "rocksdb_ldb"), "--db="+dir, "checkconsistency").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "All checks passed.") {
		t.Fatalf("rocksdb_ldb --db=DIR checkconsistency: %v\n%s", err, out)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "state", "*.sst"))
	if len(tables) == 0 {
		t.Fatalf("no table file in %s/state after a defragment", dir)
	}

	corrupt := func(name string, damage func(path string, size int64) error) {
		t.Helper()
		cp := filepath.Join(t.TempDir(), "data")
		if out, err := exec.Command("cp", "-a", dir, cp).CombinedOutput(); err != nil {
			t.Fatalf("copy the data directory: %v %s", err, out)
		}
		table := filepath.Join(cp, "state", filepath.Base(tables[0]))
		st, err := os.Stat(table)
		must(t, err)
		must(t, damage(table, st.Size()))
		r := framework.RunCLI("debug", "check", "--data-dir", cp)
		if r.ExitCode() != 1 || !strings.Contains(r.Stdout, "FAIL  table files") || !strings.Contains(r.Stdout, table) || !strings.Contains(r.Stdout, "what to do:") {
			t.Fatalf("check of a copy with a %s table file: want exit 1 and a FAIL naming %s:\n%s", name, table, r)
		}
	}
	corrupt("corrupted", func(path string, size int64) error {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.WriteAt([]byte("garbage!garbage!"), size/3)
		return err
	})
	corrupt("truncated", func(path string, size int64) error { return os.Truncate(path, size/2) })

	// repair: a leftover of an interrupted snapshot is listed, then removed.
	leftover := filepath.Join(dir, "snapshot-123")
	must(t, os.MkdirAll(leftover, 0o700))
	must(t, os.WriteFile(filepath.Join(leftover, "db"), []byte("partial"), 0o600))
	r = framework.RunCLI("debug", "repair", "--data-dir", dir)
	if r.ExitCode() != 0 || !strings.Contains(r.Stdout, "would remove "+leftover) || !strings.Contains(r.Stdout, "Not done, because it is not safe offline") {
		t.Fatalf("repair without --yes: %s", r)
	}
	if _, err := os.Stat(leftover); err != nil {
		t.Fatalf("repair without --yes removed %s: %v", leftover, err)
	}
	r = framework.RunCLI("debug", "repair", "--data-dir", dir, "--yes")
	if r.ExitCode() != 0 || !strings.Contains(r.Stdout, "removed "+leftover) {
		t.Fatalf("repair --yes: %s", r)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("repair --yes left %s: %v", leftover, err)
	}
	if r := framework.RunCLI("debug", "check", "--data-dir", dir); r.ExitCode() != 0 {
		t.Fatalf("check after repair: %s", r)
	}
	// The node starts again on the checked directory with its data.
	must(t, n.Start())
	must(t, n.WaitReady(ctx))
	if g, err := cli.Get(ctx, "check/042"); err != nil || len(g.Kvs) != 1 {
		t.Fatalf("get after the checks: %v %v", g, err)
	}
}
