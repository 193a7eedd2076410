//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/centra-cloud/centra/e2e/framework"
)

// dump returns every key as "key=value c/m/v lease?" lines and the
// revision of the read.
func dump(ctx context.Context, t *testing.T, cli *clientv3.Client) (map[string]string, int64) {
	t.Helper()
	r, err := cli.Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range r.Kvs {
		out[string(kv.Key)] = fmt.Sprintf("%s c%d m%d v%d leased=%v", kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease != 0)
	}
	return out, r.Header.Revision
}

func sameKeys(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d keys, want %d:\n got %v\nwant %v", what, len(got), len(want), got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: key %q is %q, want %q", what, k, got[k], v)
		}
	}
}

// restoreInto stops n, wipes it, restores file into its data directory with
// `centra snapshot restore` and starts it as a new single-node cluster.
func restoreInto(t *testing.T, n *framework.Node, file string) {
	t.Helper()
	must(t, n.Stop())
	must(t, n.WipeData())
	if r := framework.RunCLI("snapshot", "restore", file, "--data-dir", n.DataDir()); r.Err != nil || !strings.Contains(r.Stdout, "Restored revision") {
		t.Fatalf("centra snapshot restore: %s", r)
	}
	must(t, n.Start())
	ctx := testCtx(t, 30*time.Second)
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotEtcdFormat is the backup and migration path in both
// directions, with etcd's own tools (Debian's etcd 3.4): etcdctl snapshot
// save from centra, snapshot status, centra snapshot restore into a new
// cluster with identical keys and revisions, the same file restored by
// etcdctl starting a real etcd with the same keys, and a snapshot of that
// etcd restored into centra.
func TestSnapshotEtcdFormat(t *testing.T) {
	framework.SystemTool(t, "etcdctl")
	etcdBin := framework.SystemTool(t, "etcd")
	c := framework.NewCluster(t, framework.WithNodes(3))
	ctx := testCtx(t, 3*time.Minute)
	cli := c.Client(t)
	lease, err := cli.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if _, err := cli.Put(ctx, fmt.Sprintf("snap/%02d", i%12), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx, "snap/leased", "l", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "snap/03"); err != nil {
		t.Fatal(err)
	}
	mid, err := cli.Put(ctx, "snap/bin", "\x00\xff")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, mid.Header.Revision-5); err != nil {
		t.Fatal(err)
	}
	want, wantRev := dump(ctx, t, cli)

	dir := t.TempDir()
	file := filepath.Join(dir, "centra.db")
	r := framework.RunSystemEtcdctl(t, "--endpoints", c.Node(0).Endpoint(), "snapshot", "save", file)
	if r.Err != nil {
		t.Fatalf("etcdctl snapshot save: %s", r)
	}
	r = framework.RunSystemEtcdctl(t, "snapshot", "status", file, "-w", "table")
	revCell := regexp.MustCompile(fmt.Sprintf(`\|\s+%d\s+\|`, wantRev))
	if r.Err != nil || !revCell.MatchString(r.Stdout) {
		t.Fatalf("etcdctl snapshot status (want revision %d): %s", wantRev, r)
	}
	// centra's own save gives a file etcdctl reads the same way.
	own := filepath.Join(dir, "own.db")
	if r := framework.RunCLI("snapshot", "save", own, "--endpoint", c.Node(1).Endpoint()); r.Err != nil || !strings.Contains(r.Stdout, "Snapshot saved") {
		t.Fatalf("centra snapshot save: %s", r)
	}
	if r := framework.RunSystemEtcdctl(t, "snapshot", "status", own, "-w", "table"); r.Err != nil || !revCell.MatchString(r.Stdout) {
		t.Fatalf("etcdctl snapshot status of centra's save: %s", r)
	}

	// Migration within centra: a new single-node cluster from the file.
	rc := framework.NewCluster(t)
	restoreInto(t, rc.Node(0), file)
	rcli := rc.Node(0).Client(t)
	got, gotRev := dump(ctx, t, rcli)
	sameKeys(t, "centra restored from centra's snapshot", got, want)
	if gotRev != wantRev {
		t.Fatalf("restored revision %d, want %d", gotRev, wantRev)
	}
	if _, err := rcli.Get(ctx, "snap/00", clientv3.WithRev(mid.Header.Revision-6)); err == nil {
		t.Fatalf("read below the compacted revision %d succeeded after restore", mid.Header.Revision-5)
	}
	if p, err := rcli.Put(ctx, "snap/new", "n"); err != nil || p.Header.Revision != wantRev+1 {
		t.Fatalf("put after restore: %v %v, want revision %d", p, err, wantRev+1)
	}
	ttl, err := rcli.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "snap/leased" {
		t.Fatalf("restored lease: %+v %v", ttl, err)
	}

	// Migration out: etcd's own restore starts a real etcd 3.4.
	ecli, etcdEP := startEtcd(t, etcdBin, file)
	got, _ = dump(ctx, t, ecli)
	sameKeys(t, "etcd restored from centra's snapshot", got, want)

	// Migration in: a snapshot of that etcd, restored into centra.
	if _, err := ecli.Put(ctx, "snap/from-etcd", "e"); err != nil {
		t.Fatal(err)
	}
	want, wantRev = dump(ctx, t, ecli)
	efile := filepath.Join(dir, "etcd.db")
	if r := framework.RunSystemEtcdctl(t, "--endpoints", etcdEP, "snapshot", "save", efile); r.Err != nil {
		t.Fatalf("etcdctl snapshot save from etcd: %s", r)
	}
	ic := framework.NewCluster(t)
	restoreInto(t, ic.Node(0), efile)
	got, gotRev = dump(ctx, t, ic.Node(0).Client(t))
	sameKeys(t, "centra restored from etcd's snapshot", got, want)
	if gotRev != wantRev {
		t.Fatalf("revision after restoring etcd's snapshot: %d, want %d", gotRev, wantRev)
	}
}

// startEtcd restores file with etcd's own `etcdctl snapshot restore` and
// runs etcd on it; the process is killed when the test ends.
func startEtcd(t *testing.T, etcdBin, file string) (*clientv3.Client, string) {
	t.Helper()
	peer, err := framework.FreeAddr()
	must(t, err)
	client, err := framework.FreeAddr()
	must(t, err)
	dataDir := filepath.Join(t.TempDir(), "etcd")
	cluster := "e1=http://" + peer
	if r := framework.RunSystemEtcdctl(t, "snapshot", "restore", file, "--data-dir", dataDir, "--name", "e1",
		"--initial-cluster", cluster, "--initial-advertise-peer-urls", "http://"+peer); r.Err != nil {
		t.Fatalf("etcdctl snapshot restore: %s", r)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "etcd.log"))
	must(t, err)
	cmd := exec.Command(etcdBin, "--name", "e1", "--data-dir", dataDir,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--initial-cluster", cluster)
	cmd.Stdout, cmd.Stderr = logf, logf
	must(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("etcd log:\n%s", b)
		}
	})
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	must(t, err)
	t.Cleanup(func() { cli.Close() })
	framework.Eventually(t, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := cli.Get(ctx, "health")
		if errors.Is(err, rpctypes.ErrUserEmpty) {
			return nil // up, with auth enabled by the snapshot
		}
		return err
	}, 30*time.Second)
	return cli, client
}
