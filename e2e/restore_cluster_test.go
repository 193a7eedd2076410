//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestSnapshotRestoreCluster restores one snapshot into a 3-member cluster
// as `etcdctl snapshot restore --name --initial-cluster` does: each member
// restores the same file with its own --name, all derive the same new
// cluster ID (not the old one), a member started with the old config is
// refused with a message naming the ID to set, and the restored members
// elect a leader, hold identical keys and revisions (equal HashKV on every
// member at one revision) and accept writes.
func TestSnapshotRestoreCluster(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	ctx := testCtx(t, 3*time.Minute)
	cli := c.Client(t)
	for i := range 40 {
		if _, err := cli.Put(ctx, fmt.Sprintf("rc/%02d", i%15), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "rc/07"); err != nil {
		t.Fatal(err)
	}
	want, wantRev := dump(ctx, t, cli)
	file := filepath.Join(t.TempDir(), "backup.db")
	if r := framework.RunCLI("snapshot", "save", file, "--endpoint", c.Node(1).Endpoint()); r.Err != nil {
		t.Fatalf("centra snapshot save: %s", r)
	}
	var members []string
	for _, n := range c.Nodes() {
		members = append(members, fmt.Sprintf("%d=%s", n.ID, n.RaftAddr()))
		must(t, n.Stop())
		must(t, n.WipeData())
	}

	idLine := regexp.MustCompile(`(?m)^\[cluster\]\nid = (\d+)$`)
	membersLine := fmt.Sprintf("initial_members = [%q, %q, %q]", members[0], members[1], members[2])
	var clusterID uint64
	for _, n := range c.Nodes() {
		r := framework.RunCLI("snapshot", "restore", file, "--data-dir", n.DataDir(),
			"--name", fmt.Sprint(n.ID), "--initial-members", strings.Join(members, ","))
		m := idLine.FindStringSubmatch(r.Stdout)
		if r.Err != nil || m == nil || !strings.Contains(r.Stdout, fmt.Sprintf("Restored revision %d", wantRev)) || !strings.Contains(r.Stdout, membersLine) {
			t.Fatalf("centra snapshot restore --name %d: %s", n.ID, r)
		}
		id, err := strconv.ParseUint(m[1], 10, 64)
		must(t, err)
		if clusterID != 0 && id != clusterID {
			t.Fatalf("member %d derived cluster ID %d, member 1 derived %d", n.ID, id, clusterID)
		}
		clusterID = id
	}
	if clusterID == 1 {
		t.Fatal("the restored cluster kept the old cluster ID 1")
	}
	// A restored member that never started checks clean: it has no raft
	// log yet, by design.
	if r := framework.RunCLI("debug", "check", "--data-dir", c.Node(2).DataDir()); r.ExitCode() != 0 || !strings.Contains(r.Stdout, "SKIP  raft log") {
		t.Fatalf("debug check of a restored, never started member: %s", r)
	}

	// The old config (cluster id 1) is refused before anything starts.
	code, log, err := c.Node(0).StartExpectingExit(30 * time.Second)
	if err != nil || code == 0 || !strings.Contains(log, fmt.Sprintf("[cluster] id = %d", clusterID)) {
		t.Fatalf("start of a restored member with the old cluster ID: exit %d, %v; want a refusal naming [cluster] id = %d:\n%s", code, err, clusterID, log)
	}

	flag := fmt.Sprintf("--cluster-id=%d", clusterID)
	for _, n := range c.Nodes() {
		must(t, n.StartWithArgs(flag))
	}
	for _, n := range c.Nodes() {
		must(t, n.WaitReady(ctx))
	}
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	cli = c.Client(t)
	got, gotRev := dump(ctx, t, cli)
	sameKeys(t, "restored cluster", got, want)
	if gotRev != wantRev {
		t.Fatalf("restored cluster is at revision %d, the snapshot at %d", gotRev, wantRev)
	}
	var hashes []string
	for _, n := range c.Nodes() {
		h, err := cli.HashKV(ctx, n.Endpoint(), wantRev)
		if err != nil {
			t.Fatalf("hashkv on member %d: %v", n.ID, err)
		}
		if h.Header.ClusterId != clusterID {
			t.Fatalf("member %d reports cluster ID %d, want %d", n.ID, h.Header.ClusterId, clusterID)
		}
		hashes = append(hashes, fmt.Sprint(h.Hash))
	}
	if hashes[0] != hashes[1] || hashes[1] != hashes[2] {
		t.Fatalf("HashKV at revision %d differs between the restored members: %v", wantRev, hashes)
	}
	put, err := cli.Put(ctx, "rc/after", "restore")
	if err != nil || put.Header.Revision != wantRev+1 {
		t.Fatalf("put after the restore: %v %v (want revision %d)", put, err, wantRev+1)
	}
	ms, err := cli.MemberList(ctx, clientv3.WithSerializable())
	if err != nil || len(ms.Members) != 3 {
		t.Fatalf("member list of the restored cluster: %v %v", ms, err)
	}
}
