//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
	flaredb "github.com/centra-cloud/centra/flaredb/client"
)

// TestRunbookFlareDBStorageLines provokes the FlareDB storage and snapshot
// lines of the troubleshooting runbook's "Log Analysis" on one
// control-plane node and three stores started as under journald, and finds
// each with the runbook's greps:
//   - `WARN flaredb_storage: RocksDB stall detected, duration=Nms`: 1 MiB
//     memtables, at most 2 queued, and writers in parallel, so writes stall
//     while a flush runs (the runbook's `grep -i stall`);
//   - `WARN flaredb_storage: Compaction is slow, duration=...`: with
//     [storage] slow_compaction_ms = 1 every compaction those writes cause
//     is slow (the runbook's `grep -i compaction | tail -50`);
//   - `INFO flaredb_raft: Applied snapshot, index=N`: a store stopped while
//     the region's log is compacted (snapshot every 20 entries) catches up
//     from a snapshot when it restarts.
func TestRunbookFlareDBStorageLines(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithStores(3), framework.WithJournald(),
		framework.WithStoreArgs("--storage-write-buffer-size", "1048576", "--storage-max-write-buffer-number", "2",
			"--storage-slow-compaction-ms", "1", "--raft-snapshot-entries", "20", "--raft-compaction-overhead", "5"))
	ctx := testCtx(t, 3*time.Minute)
	cli, err := flaredb.New(c.Node(0).URL())
	must(t, err)
	defer cli.Close()
	value := func(i int) []byte { return fmt.Appendf(nil, "%06d-%s", i, strings.Repeat("s", 4000)) }
	fdbFill(t, ctx, cli, "storage", 250, value) // the region serves writes

	// A store that holds a replica is stopped; the others go on.
	_, lagging := leaderAndOtherStore(t, ctx, c)
	must(t, lagging.Stop())

	// Writers in parallel: 4 x 40 batches of 250 rows of 4 kB (each batch
	// ~1 MB, one raft entry) against 1 MiB memtables.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range 40 {
				pairs := make([]flaredb.KvPair, 0, 250)
				for i := range 250 {
					n := (w*40+b)*250 + i
					pairs = append(pairs, flaredb.KvPair{Key: fdbKey(n), Value: value(n)})
				}
				if err := cli.BatchPut(ctx, "storage", pairs); err != nil {
					errs <- fmt.Errorf("writer %d batch %d: %w", w, b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var logs strings.Builder
	for _, s := range c.Stores() {
		if s != lagging {
			logs.WriteString(s.CurrentLog())
		}
	}
	wantPipe(t, "the running stores", logs.String(), `grep -i stall`, "WARN flaredb_storage: RocksDB stall detected, duration=")
	wantPipe(t, "the running stores", logs.String(), `grep -i compaction | tail -50`, "WARN flaredb_storage: Compaction is slow, duration=")

	// The stopped store restarts behind the compacted log: the leader
	// sends it a snapshot.
	must(t, lagging.Start())
	must(t, lagging.WaitLog(ctx, "INFO flaredb_raft: Applied snapshot, index="))
	wantPipe(t, lagging.String(), lagging.CurrentLog(), `grep "Applied snapshot"`, "INFO flaredb_raft: Applied snapshot, index=")
}
