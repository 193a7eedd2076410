//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestRunbookReplayTLS replays the troubleshooting runbook's command lines
// as typed on a mutual-TLS cluster (3 control-plane nodes, 3 stores): the
// runbook's program names (chainfire-client, flaredb-client, rocksdb_ldb
// links to centra), its http://NODE:PORT endpoints, and the TLS material
// only in the environment (CENTRA_CACERT, CENTRA_CERT, CENTRA_KEY), as an
// operator's shell would have it. In the runbook's order: the quick
// diagnostics, "Data Inconsistency After Crash" (offline check and repair,
// then "If cannot restore": wipe and rejoin with the original bootstrap =
// true config, replayWipeRejoin), the split-brain resolution
// (replaySplitBrain), FlareDB serving again afterwards; then the
// scale-out runbook's Chainfire part (replayScaleOut), etcdctl included.
//
// Covered elsewhere, on their own clusters: the scale-out runbook's FlareDB
// part (TestPDScaleOutRepairDrain), the quoted log lines
// (TestRunbookLogLines, TestRunbookFlareDBLogLines,
// TestRunbookFlareDBStorageLines), the PD curl | jq lines
// (TestRunbookFlareDBLogLines; curl has no CENTRA_* variables, so those
// lines as typed need a plain-HTTP PD), 20 consecutive --force-new-cluster
// recoveries (TestForceNewClusterRepeated) and the alert rules under
// promtool (docs/prometheus TestRules).
func TestRunbookReplayTLS(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3), framework.WithStores(3), framework.WithTLS())
	env := c.TLSEnv("CENTRA")
	runbookBin := func(name string) cliRun {
		bin := framework.MultiCallBin(t, name)
		return func(args ...string) framework.CmdResult { return framework.RunBinEnv(bin, env, args...) }
	}
	cf, fdb, ldb := runbookBin("chainfire-client"), runbookBin("flaredb-client"), runbookBin("rocksdb_ldb")
	centra := centraWithEnv(env)
	pdEP := httpEndpoint(c.Node(0))
	storeEP := httpEndpoint(c.Store(0))

	// Quick diagnostics: health of both clusters.
	for _, n := range c.Nodes() {
		r := cf("--endpoint", httpEndpoint(n), "status")
		st := statusLines(r.Stdout)
		if r.Err != nil || st["leader"] == "" || st["leader"] == "none" || st["raft_index"] == "" {
			t.Fatalf("chainfire-client --endpoint %s status: want a leader and raft_index, got %s", httpEndpoint(n), r)
		}
	}
	r := cf("--endpoint", httpEndpoint(c.Node(0)), "member-list")
	for _, n := range c.Nodes() {
		if r.Err != nil || !strings.Contains(r.Stdout, n.Name) {
			t.Fatalf("chainfire-client member-list: want %s listed, got %s", n.Name, r)
		}
	}
	storesUp := func() error {
		r := fdb("--endpoint", pdEP, "cluster-status")
		if r.Err != nil || strings.Count(r.Stdout, "state=Up") != 3 {
			return fmt.Errorf("flaredb-client --endpoint %s cluster-status: want 3 stores Up, got %s", pdEP, r)
		}
		return nil
	}
	framework.Eventually(t, storesUp, time.Minute)
	// "Check store responsiveness" (Read/Write Timeout): get test-key.
	framework.Eventually(t, func() error {
		if r := fdb("--endpoint", storeEP, "put", "test-key", "test-value"); r.Err != nil || r.Stdout != "OK\n" {
			return fmt.Errorf("flaredb-client --endpoint %s put test-key: %s", storeEP, r)
		}
		return nil
	}, time.Minute)
	if r := fdb("--endpoint", storeEP, "get", "test-key"); r.Err != nil || r.Stdout != "test-value\n" {
		t.Fatalf("flaredb-client --endpoint %s get test-key: want test-value, got %s", storeEP, r)
	}

	// Data Inconsistency After Crash: stop, rocksdb_ldb repair and
	// checkconsistency, start, watch raft_index.
	n3 := c.Node(2)
	must(t, n3.Stop())
	db := "--db=" + n3.DataDir()
	if r := ldb(db, "repair"); r.Err != nil {
		t.Fatalf("rocksdb_ldb %s repair on a clean stopped node: %s", db, r)
	}
	if r := ldb(db, "checkconsistency"); r.Err != nil || !strings.Contains(r.Stdout, "All checks passed.") {
		t.Fatalf("rocksdb_ldb %s checkconsistency: %s", db, r)
	}
	must(t, n3.Start())
	must(t, n3.WaitReady(testCtx(t, 30*time.Second)))
	framework.Eventually(t, func() error {
		r := cf("--endpoint", httpEndpoint(n3), "status")
		if _, err := statusUint(statusLines(r.Stdout), "raft_index"); r.Err != nil || err != nil {
			return fmt.Errorf("chainfire-client status | grep raft_index on the restarted node: %s %v", r, err)
		}
		return nil
	}, 20*time.Second)

	// If cannot restore: remove, wipe, rejoin (original config).
	replayWipeRejoin(t, c, cf, centra)

	// Split-brain: keep the node with the highest raft_index.
	replaySplitBrain(t, c, cf, centra)

	// The stores find PD again on the recovered control plane and serve
	// the data written before.
	framework.Eventually(t, storesUp, 2*time.Minute)
	framework.Eventually(t, func() error {
		if r := fdb("--endpoint", storeEP, "get", "test-key"); r.Err != nil || r.Stdout != "test-value\n" {
			return fmt.Errorf("flaredb-client get test-key after the split-brain recovery: %s", r)
		}
		return nil
	}, time.Minute)

	// The scale-out runbook's Chainfire part on the recovered cluster:
	// node 4 with Step 1's config and its [network.tls] section, added as
	// a learner, promoted, then rolled back.
	etcdctlBin := framework.EtcdctlBin(t)
	etcdctl := func(args ...string) framework.CmdResult {
		return framework.RunBinEnv(etcdctlBin, c.TLSEnv("ETCDCTL"), args...)
	}
	replayScaleOut(t, c, cf, centra, etcdctl)
}
