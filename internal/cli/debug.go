package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/urfave/cli/v2"

	"github.com/centra-cloud/centra/chainfire"
	"github.com/centra-cloud/centra/config"
	"github.com/centra-cloud/centra/flaredb"
	"github.com/centra-cloud/centra/internal/app"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// Exit codes of `centra debug check` (and repair): as fsck's, 0 clean,
// 1 problems found, 2 the check could not run.
const (
	exitProblems  = 1
	exitCantCheck = 2
)

// Advice printed under failed checks.
const (
	adviceRejoin = "this member's copy is damaged: if the cluster has other healthy members, move the data directory aside " +
		"(mv DIR DIR.corrupted), start the node on an empty one and add it back (member-remove, then member-add: the runbook's \"wipe and rejoin\"); " +
		"if this is the only copy, restore the latest backup or a `centra snapshot save` file with `centra snapshot restore`"
	adviceStop = "stop the node first (systemctl stop centra), then run the check again"
)

func debugCommand() *cli.Command {
	dataDir := &cli.StringFlag{Name: "data-dir", Required: true, Usage: "data directory of a STOPPED node (storage.data_dir: holds raft/ and state/)"}
	return &cli.Command{
		Name:  "debug",
		Usage: "offline checks of a stopped node's data directory (rocksdb_ldb checkconsistency / repair)",
		Subcommands: []*cli.Command{
			{
				Name: "check", Usage: "check --data-dir DIR: verify every table file's checksums, the raft log, the applied index against the log, Chainfire's MVCC invariants and FlareDB's region descriptors; exit 0 clean, 1 problems found, 2 could not check",
				Flags: []cli.Flag{dataDir}, Action: debugCheck,
			},
			{
				Name: "repair", Usage: "repair --data-dir DIR [--yes]: remove what a crash left behind (temporary snapshot, ingest and export files); lists what it would do unless --yes",
				Flags:  []cli.Flag{dataDir, &cli.BoolFlag{Name: "yes", Usage: "make the changes (without it, only list them)"}},
				Action: debugRepair,
			},
		},
	}
}

// checkReport prints one line per check and counts failures.
type checkReport struct {
	w        io.Writer
	failures int
}

func (r *checkReport) ok(name, format string, args ...any) {
	fmt.Fprintf(r.w, "OK    %-16s %s\n", name, fmt.Sprintf(format, args...))
}

func (r *checkReport) warn(name, msg string) {
	fmt.Fprintf(r.w, "WARN  %-16s %s\n", name, msg)
}

// fail prints the problems of one check (the first line of each) and what
// to do about them.
func (r *checkReport) fail(name string, problems []string, advice string) {
	r.failures++
	for _, p := range problems {
		first, _, _ := strings.Cut(p, "\n")
		fmt.Fprintf(r.w, "FAIL  %-16s %s\n", name, first)
	}
	fmt.Fprintf(r.w, "      %-16s what to do: %s\n", "", advice)
}

// cantCheck is an exit-2 error.
func cantCheck(format string, args ...any) error {
	return cli.Exit("debug: "+fmt.Sprintf(format, args...), exitCantCheck)
}

// dataDirs returns the state and raft directories of DIR, or an exit-2
// error when DIR is not a stopped node's data directory.
func dataDirs(dir string) (stateDir, raftDir string, err error) {
	cfg := config.Default()
	cfg.Storage.DataDir = dir
	stateDir, raftDir = cfg.StateDir(), cfg.RaftDir()
	if _, err := os.Stat(stateDir); err != nil {
		return "", "", cantCheck("%s is not a centra data directory (no state/): %v", dir, err)
	}
	locks := []string{stateDir}
	if parts, _ := filepath.Glob(filepath.Join(raftDir, "*", "*", "logdb-*")); len(parts) > 0 {
		locks = append(locks, parts[0])
	}
	for _, d := range locks {
		if err := raftnode.CheckNotRunning(d); err != nil {
			return "", "", cantCheck("%v: a centra process is running on %s; %s", err, dir, adviceStop)
		}
	}
	return stateDir, raftDir, nil
}

// debugCheck runs every offline check on a stopped node's data directory.
func debugCheck(c *cli.Context) error {
	dir := c.String("data-dir")
	stateDir, raftDir, err := dataDirs(dir)
	if err != nil {
		return err
	}
	out := stdoutOf(c)
	fmt.Fprintf(out, "Checking %s (read-only)\n", dir)
	r := &checkReport{w: out}
	p := &progress{w: c.App.ErrWriter}

	logParts, _ := filepath.Glob(filepath.Join(raftDir, "*", "*", "logdb-*"))
	files, bad, err := raftnode.CheckSSTables(append([]string{stateDir}, logParts...), func(n, total int, b, totalB int64) {
		p.report(n == total, "Verifying table files: %d of %d (%d of %d bytes)", n, total, b, totalB)
	})
	if err != nil {
		return cantCheck("%v", err)
	}
	if len(bad) == 0 {
		r.ok("table files", "%d files, every block checksum matches", files)
	} else {
		var problems []string
		for _, b := range bad {
			problems = append(problems, fmt.Sprintf("%s: %v", b.Path, b.Err))
		}
		r.fail("table files", problems, adviceRejoin)
	}

	db, err := raftnode.OpenStateDBReadOnly(stateDir)
	if err != nil {
		r.fail("state DB", []string{err.Error()}, adviceRejoin)
		return r.done(out)
	}
	defer db.Close()
	fmt.Fprintln(c.App.ErrWriter, "Reading every key of the state DB for pebble's level invariants ...")
	points, err := raftnode.CheckLevels(db)
	if err != nil {
		r.fail("state DB", []string{err.Error()}, adviceRejoin)
	} else {
		r.ok("state DB", "%d keys read, pebble's level invariants hold", points)
	}
	stateOK := err == nil && len(bad) == 0

	_, restoreErr := os.Stat(filepath.Join(dir, app.RestoreFile))
	if len(logParts) == 0 && restoreErr == nil {
		fmt.Fprintf(out, "SKIP  %-16s none yet: the directory was restored from a snapshot and its node has not started (it bootstraps the log)\n", "raft log")
	} else if logs, err := raftnode.CheckRaftLog(raftDir, func(n, total int) { p.report(n == total, "Reading raft log partitions: %d of %d", n, total) }); err != nil {
		r.fail("raft log", []string{err.Error()}, adviceRejoin)
	} else {
		checkLogs(r, db, logs, stateOK)
	}

	if !stateOK {
		fmt.Fprintf(out, "SKIP  %-16s the state DB is damaged; its applied indexes, Chainfire's MVCC records and FlareDB's regions were not checked\n", "state contents")
		return r.done(out)
	}
	r.guard("chainfire mvcc", func() { checkChainfire(r, db, p) })
	r.guard("flaredb regions", func() { checkRegions(r, db) })
	return r.done(out)
}

// guard runs a check that reads the state DB and reports a panic of
// pebble's (it panics on corruption it finds while iterating) as a failure.
func (r *checkReport) guard(name string, check func()) {
	defer func() {
		if v := recover(); v != nil {
			r.fail(name, []string{fmt.Sprint(v)}, adviceRejoin)
		}
	}()
	check()
}

// done prints the summary and returns the exit status.
func (r *checkReport) done(out io.Writer) error {
	if r.failures > 0 {
		return cli.Exit(fmt.Sprintf("debug check: %d check(s) failed", r.failures), exitProblems)
	}
	fmt.Fprintln(out, "All checks passed.")
	return nil
}

// manyLogs is the number of replica logs above which the OK ones of FlareDB
// regions are summed up in one line instead of two lines each.
const manyLogs = 8

// checkLogs reports each replica's raft log and, when the state DB is
// intact, its applied index.
func checkLogs(r *checkReport, db *pebble.DB, logs []*raftnode.ShardLog, stateOK bool) {
	quiet := 0 // regions whose OK lines were not printed
	for _, l := range logs {
		verbose := len(logs) <= manyLogs || l.ShardID == raftnode.MetadataShardID
		name := fmt.Sprintf("raft log %d", l.ShardID)
		if len(l.Problems) > 0 {
			r.fail(name, l.Problems, adviceRejoin)
			continue
		}
		if verbose {
			r.ok(name, "replica %d: entries %d..%d readable and contiguous (snapshot at %d), commit %d, term %d", l.ReplicaID, l.FirstIndex, l.LastIndex, l.SnapshotIndex, l.Commit, l.Term)
		}
		if !stateOK {
			continue
		}
		applied, err := raftnode.ReadAppliedIndex(db, raftnode.ShardKeyspace(l.ShardID))
		name = fmt.Sprintf("applied %d", l.ShardID)
		switch {
		case err != nil:
			r.fail(name, []string{err.Error()}, adviceRejoin)
		case applied > max(l.LastIndex, l.SnapshotIndex):
			r.fail(name, []string{fmt.Sprintf("the state DB applied index %d is beyond the last raft log index %d: the log lost entries this member applied", applied, max(l.LastIndex, l.SnapshotIndex))},
				"if other members are healthy, wipe and rejoin this one; if it is the only survivor, run --force-new-cluster on another member with a higher raft_index or restore a backup")
		case applied < l.SnapshotIndex:
			r.fail(name, []string{fmt.Sprintf("the state DB applied index %d is below the raft snapshot at %d (dragonboat refuses to start the replica)", applied, l.SnapshotIndex)}, adviceRejoin)
		case !verbose:
			quiet++
		case applied > l.Commit:
			r.ok(name, "state DB applied index %d is beyond the stored commit index %d, within the log: commit indexes are written lazily (a crash lost the latest); the member raises it to %d when it starts", applied, l.Commit, applied)
		default:
			r.ok(name, "state DB applied index %d <= commit %d, >= snapshot %d", applied, l.Commit, l.SnapshotIndex)
		}
	}
	if quiet > 0 {
		r.ok("raft logs", "%d more region replicas: entries readable and contiguous, applied index within the log", quiet)
	}
}

// checkChainfire checks the MVCC invariants when the node holds Chainfire
// data.
func checkChainfire(r *checkReport, db *pebble.DB, p *progress) {
	records := 0
	st, problems, err := chainfire.CheckState(db, func(n int) {
		records = n
		p.report(false, "Checking Chainfire records: %d", n)
	})
	if records > 0 {
		p.report(true, "Checking Chainfire records: done")
	}
	switch {
	case err != nil:
		r.fail("chainfire mvcc", []string{err.Error()}, adviceRejoin)
	case len(problems) > 0:
		r.fail("chainfire mvcc", problems, adviceRejoin)
	default:
		r.ok("chainfire mvcc", "revision %d, compacted %d, %d key versions and %d revision index entries agree", st.Revision, st.Compacted, st.Versions, st.RevIndex)
	}
}

// checkRegions checks FlareDB's region descriptors against each other.
func checkRegions(r *checkReport, db *pebble.DB) {
	rc, err := flaredb.CheckRegions(db)
	switch {
	case err != nil:
		r.fail("flaredb regions", []string{err.Error()}, adviceRejoin)
		return
	case len(rc.Problems) > 0:
		r.fail("flaredb regions", rc.Problems, adviceRejoin+"; PD re-creates the replica elsewhere once this store is removed")
	default:
		r.ok("flaredb regions", "%d region descriptors consistent, %d data keys", rc.Regions, rc.DataKeys)
	}
	for _, w := range rc.Warnings {
		r.warn("flaredb regions", w)
	}
}

// leftover is something a crash left in a data directory that a stopped
// node never needs.
type leftover struct {
	path, why string
}

// leftovers lists what `debug repair` removes.
func leftovers(dir, raftDir string) []leftover {
	var out []leftover
	add := func(pattern, why string) {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			out = append(out, leftover{m, why})
		}
	}
	add(filepath.Join(dir, "snapshot-*"), "half-built Maintenance.Snapshot file (removed after streaming)")
	add(filepath.Join(dir, "snap-ingest", "raftnode-snap-*.sst"), "half-written region snapshot table (rebuilt when the snapshot is received again)")
	add(filepath.Join(dir, "*.tmp"), "unfinished atomic write of an identity file (the original is intact)")
	add(filepath.Join(raftDir, "force-new-cluster"), "export of an interrupted --force-new-cluster (it starts over)")
	return out
}

// debugRepair removes crash leftovers; it changes nothing else.
func debugRepair(c *cli.Context) error {
	dir := c.String("data-dir")
	_, raftDir, err := dataDirs(dir)
	if err != nil {
		return err
	}
	out := stdoutOf(c)
	items := leftovers(dir, raftDir)
	yes := c.Bool("yes")
	if len(items) == 0 {
		fmt.Fprintln(out, "Nothing to remove: no leftovers of an interrupted snapshot, ingest, identity write or --force-new-cluster.")
	}
	var errs []error
	for _, it := range items {
		if !yes {
			fmt.Fprintf(out, "would remove %s: %s\n", it.path, it.why)
			continue
		}
		if err := os.RemoveAll(it.path); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(out, "removed %s: %s\n", it.path, it.why)
	}
	fmt.Fprint(out, strings.Join([]string{
		"Not done, because it is not safe offline:",
		"  - torn WAL tails: pebble and dragonboat's log DB recover them themselves at open (debug check opens both read-only and shows whether they open);",
		"  - damaged table files or raft log entries: this node has no second copy to repair them from; wipe and rejoin the member so it copies the data from its peers (debug check prints how);",
		"  - region replicas PD no longer lists: only PD knows, and it may still be moving or recovering them; the store removes them itself once PD says so;",
		"  - dropping raft entries or rewinding the applied index: that loses acknowledged writes.",
	}, "\n")+"\n")
	if !yes && len(items) > 0 {
		fmt.Fprintln(out, "Nothing changed; run again with --yes to remove the above.")
	}
	if len(errs) > 0 {
		return cli.Exit(fmt.Sprintf("debug repair: %v", errors.Join(errs...)), exitProblems)
	}
	return nil
}
