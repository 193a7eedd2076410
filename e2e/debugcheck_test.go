//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
	flaredb "github.com/centra-cloud/centra/flaredb/client"
)

// TestDebugCheck runs `centra debug check` on the data directory of a real
// node: exit 2 with "stop the node first" while it runs; exit 0 once it is
// stopped, leaving every file byte for byte as it was (also as the
// runbook's `rocksdb_ldb --db=DIR checkconsistency`); exit 1 naming the
// file on copies with a table file corrupted in the middle or truncated;
// `debug repair` lists leftovers without --yes and removes them with it,
// after which the check still passes.
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

	before := dirDigest(t, dir)
	r = framework.RunCLI("debug", "check", "--data-dir", dir)
	if after := dirDigest(t, dir); after != before {
		t.Fatalf("debug check changed the data directory:\nbefore %s\nafter  %s", before, after)
	}
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
		checkDamagedCopy(t, dir, filepath.Base(tables[0]), name, damage)
	}
	corrupt("corrupted", overwriteThird)
	corrupt("truncated", func(path string, size int64) error { return os.Truncate(path, size/2) })

	// repair: leftovers of an interrupted snapshot and of a half-written
	// region snapshot table (garbage, but in no DB: check ignores it) are
	// listed, then removed.
	leftovers := []string{filepath.Join(dir, "snapshot-123"), filepath.Join(dir, "snap-ingest", "raftnode-snap-5-123.sst")}
	must(t, os.MkdirAll(leftovers[0], 0o700))
	must(t, os.WriteFile(filepath.Join(leftovers[0], "db"), []byte("partial"), 0o600))
	must(t, os.MkdirAll(filepath.Dir(leftovers[1]), 0o700))
	must(t, os.WriteFile(leftovers[1], []byte("half a table"), 0o600))
	if r := framework.RunCLI("debug", "check", "--data-dir", dir); r.ExitCode() != 0 {
		t.Fatalf("check with crash leftovers beside the DBs: %s", r)
	}
	r = framework.RunCLI("debug", "repair", "--data-dir", dir)
	for _, l := range leftovers {
		if r.ExitCode() != 0 || !strings.Contains(r.Stdout, "would remove "+l) || !strings.Contains(r.Stdout, "Not done, because it is not safe offline") {
			t.Fatalf("repair without --yes (want %s listed): %s", l, r)
		}
		if _, err := os.Stat(l); err != nil {
			t.Fatalf("repair without --yes removed %s: %v", l, err)
		}
	}
	r = framework.RunCLI("debug", "repair", "--data-dir", dir, "--yes")
	for _, l := range leftovers {
		if r.ExitCode() != 0 || !strings.Contains(r.Stdout, "removed "+l) {
			t.Fatalf("repair --yes (want %s removed): %s", l, r)
		}
		if _, err := os.Stat(l); !os.IsNotExist(err) {
			t.Fatalf("repair --yes left %s: %v", l, err)
		}
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

// checkDamagedCopy copies the stopped node's data directory dir, damages
// the table file state/table of the copy, and checks that `debug check`
// exits 1 with a FAIL line naming that file and what to do.
func checkDamagedCopy(t *testing.T, dir, table, name string, damage func(path string, size int64) error) {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command("cp", "-a", dir, cp).CombinedOutput(); err != nil {
		t.Fatalf("copy the data directory: %v %s", err, out)
	}
	path := filepath.Join(cp, "state", table)
	st, err := os.Stat(path)
	must(t, err)
	must(t, damage(path, st.Size()))
	r := framework.RunCLI("debug", "check", "--data-dir", cp)
	if r.ExitCode() != 1 || !strings.Contains(r.Stdout, "FAIL  table files") || !strings.Contains(r.Stdout, path) || !strings.Contains(r.Stdout, "what to do:") {
		t.Fatalf("check of a copy with a %s table file: want exit 1 and a FAIL naming %s:\n%s", name, path, r)
	}
}

// overwriteThird writes 16 bytes of garbage a third into the file path of
// the given size.
func overwriteThird(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt([]byte("garbage!garbage!"), size/3)
	return err
}

// TestDebugCheckFlareDBStore runs `centra debug check` on the data
// directory of one of three real FlareDB stores (PD creates the first
// region once max-replicas = 3 stores are up; 1 MiB memtables, so the rows
// reach table files):
// exit 2 while it runs; exit 0 once stopped, with the region descriptors
// and the region replicas' raft logs checked; exit 1 naming the file on a
// copy with a table file corrupted; the store then starts again on the
// checked directory and serves its rows.
func TestDebugCheckFlareDBStore(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithStores(3), framework.WithStoreArgs("--storage-write-buffer-size", "1048576"))
	ctx := testCtx(t, 2*time.Minute)
	cli, err := flaredb.New(c.Node(0).URL())
	must(t, err)
	defer cli.Close()
	const rows = 3000
	value := func(i int) []byte { return fmt.Appendf(nil, "%06d-%s", i, strings.Repeat("v", 1000)) }
	fdbFill(t, ctx, cli, "check", rows, value)
	store := c.Store(0)
	dir := store.DataDir()
	if r := framework.RunCLI("debug", "check", "--data-dir", dir); r.ExitCode() != 2 || !strings.Contains(r.Stderr, "stop the node first") {
		t.Fatalf("check of a running store: want exit 2 and \"stop the node first\":\n%s", r)
	}
	must(t, store.Stop())
	r := framework.RunCLI("debug", "check", "--data-dir", dir)
	if r.ExitCode() != 0 || !strings.Contains(r.Stdout, "All checks passed.") || strings.Contains(r.Stdout, "FAIL") ||
		!regexp.MustCompile(`OK    flaredb regions +\d+ region descriptors consistent, [1-9]\d* data keys`).MatchString(r.Stdout) {
		t.Fatalf("check of a stopped store: want exit 0, every check OK and the regions' data keys counted:\n%s", r)
	}
	t.Logf("debug check of the stopped store:\n%s", r.Stdout)
	tables, _ := filepath.Glob(filepath.Join(dir, "state", "*.sst"))
	if len(tables) == 0 {
		t.Fatalf("no table file in %s/state after writing %d rows of 1 kB with 1 MiB memtables", dir, rows)
	}
	checkDamagedCopy(t, dir, filepath.Base(tables[len(tables)-1]), "corrupted", overwriteThird)

	must(t, store.Start())
	framework.Eventually(t, func() error {
		v, found, err := cli.Get(ctx, "check", fdbKey(rows-1))
		if err != nil {
			return err
		}
		if !found || string(v) != string(value(rows-1)) {
			return fmt.Errorf("get %s after the checks: %.20q", fdbKey(rows-1), v)
		}
		return nil
	}, time.Minute)
}

// dirDigest returns a SHA-256 over the names and contents of every file
// under dir.
func dirDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", path, len(data))
		h.Write(data)
		return nil
	})
	must(t, err)
	return hex.EncodeToString(h.Sum(nil))
}
