package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	"github.com/centra-cloud/centra/chainfire"
	"github.com/centra-cloud/centra/config"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/internal/app"
)

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "online backup and restore of Chainfire in etcd's snapshot format",
		Subcommands: []*cli.Command{
			{
				Name: "save", Usage: "save FILE: stream a consistent snapshot from a member into FILE (etcd's format: etcdctl snapshot status/restore read it)", ArgsUsage: "FILE",
				Flags: clientFlags(), Action: snapshotSave,
			},
			{
				Name: "restore", Usage: "restore FILE --data-dir DIR [--name ID --initial-members ID=HOST:PORT,...]: load a snapshot taken from centra or from etcd into a new data directory, then start a new cluster on it (bootstrap = true); with --initial-members every member restores the same file with its own --name and they form a new cluster (etcdctl snapshot restore --name --initial-cluster)", ArgsUsage: "FILE",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "data-dir", Required: true, Usage: "new data directory (storage.data_dir of the node to start); must not hold data"},
					&cli.StringFlag{Name: "name", Usage: "node ID of this member in --initial-members (etcd's --name)"},
					&cli.StringFlag{Name: "initial-members", Usage: "members of the new cluster, \"ID=HOST:RAFTPORT,...\" ([cluster] initial_members; etcd's --initial-cluster); the same on every member"},
					&cli.Uint64Flag{Name: "cluster-id", Usage: "[cluster] id of the new cluster; default: derived from the file and the member list, the same on every member and unlike the old cluster's"},
					&cli.BoolFlag{Name: "skip-hash-check", Usage: "accept a file without etcd's trailing SHA-256 (a db file copied from an etcd member's data directory)"},
				},
				Action: snapshotRestore,
			},
		},
	}
}

// progress prints a one-line progress report to stderr at most every
// 200 ms, and always for the final call.
type progress struct {
	w    io.Writer
	last time.Time
}

func (p *progress) report(final bool, format string, args ...any) {
	if !final && time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\r"+format, args...)
	if final {
		fmt.Fprintln(p.w)
	}
}

// snapshotSave streams Maintenance.Snapshot from the first endpoint that
// answers into FILE.part, syncs it and renames it to FILE.
func snapshotSave(c *cli.Context) error {
	if c.NArg() != 1 {
		return exitf("snapshot save: give the FILE to write")
	}
	path := c.Args().First()
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
	defer stop()
	part := path + ".part"
	var size int64
	var lastErr error
	for _, url := range cn.urls {
		size, lastErr = saveFrom(ctx, cn, url, part, c.App.ErrWriter)
		if lastErr == nil || !retryable(lastErr) {
			break
		}
	}
	if lastErr != nil {
		os.Remove(part)
		return cn.describe(ctx, cn.urls[0], lastErr)
	}
	if err := os.Rename(part, path); err != nil {
		return err
	}
	fmt.Fprintf(stdoutOf(c), "Snapshot saved at %s (%d bytes)\n", path, size)
	return nil
}

func saveFrom(ctx context.Context, cn *conn, url, part string, errw io.Writer) (int64, error) {
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	stream, err := etcdserverpbconnect.NewMaintenanceClient(cn.http, url, connect.WithGRPC()).Snapshot(ctx, connect.NewRequest(&etcdserverpb.SnapshotRequest{}))
	if err != nil {
		return 0, err
	}
	defer stream.Close()
	p := &progress{w: errw}
	var n int64
	for stream.Receive() {
		m := stream.Msg()
		if _, err := f.Write(m.Blob); err != nil {
			return n, err
		}
		n += int64(len(m.Blob))
		total := n + int64(m.RemainingBytes)
		p.report(m.RemainingBytes == 0, "Saving snapshot: %d of %d bytes (%d%%)", n, total, 100*n/max(total, 1))
	}
	if err := stream.Err(); err != nil {
		return n, err
	}
	return n, f.Sync()
}

// snapshotRestore loads FILE into DIR/state; with --initial-members it
// also pins DIR to the new cluster (app.RestoreRecord).
func snapshotRestore(c *cli.Context) error {
	if c.NArg() != 1 {
		return exitf("snapshot restore: give the snapshot FILE")
	}
	file, dir := c.Args().First(), c.String("data-dir")
	cfg := config.Default()
	cfg.Storage.DataDir = dir
	for _, sub := range []string{cfg.StateDir(), cfg.RaftDir()} {
		if entries, err := os.ReadDir(sub); err == nil && len(entries) > 0 {
			return exitf("snapshot restore: %s already holds data; restore into a new data directory", sub)
		}
	}
	cluster, err := restoreCluster(c, file)
	if err != nil {
		return err
	}
	p := &progress{w: c.App.ErrWriter}
	info, err := chainfire.Restore(file, cfg.StateDir(), chainfire.RestoreOptions{
		SkipHashCheck: c.Bool("skip-hash-check"),
		Progress:      func(n int) { p.report(false, "Restoring: %d key versions", n) },
	})
	if err != nil {
		return err
	}
	p.report(true, "Restoring: %d key versions", info.Versions)
	abs, _ := filepath.Abs(dir)
	out := stdoutOf(c)
	fmt.Fprintf(out, "Restored revision %d (%d key versions, %d leases, compacted at %d) into %s.\n",
		info.Revision, info.Versions, info.Leases, info.Compacted, abs)
	if cluster == nil {
		fmt.Fprintf(out, "Start the first member on it with storage.data_dir = %q and bootstrap = true (initial_members lists the new cluster; restore the same file on each initial member).\n", abs)
		return nil
	}
	cluster.Revision = info.Revision
	if err := app.WriteRestoreRecord(dir, *cluster); err != nil {
		return err
	}
	fmt.Fprintf(out, "Member %d of a new cluster. Start it with this config (the same [cluster] on every member; each restores the same file with its own --name):\n\n"+
		"[node]\nid = %d\n\n[cluster]\nid = %d\nbootstrap = true\ninitial_members = %s\n\n[storage]\ndata_dir = %q\n",
		cluster.NodeID, cluster.NodeID, cluster.ClusterID, app.TOMLList(cluster.InitialMembers), abs)
	return nil
}

// restoreCluster parses --name, --initial-members and --cluster-id into the
// record of the new cluster; nil without --initial-members.
func restoreCluster(c *cli.Context, file string) (*app.RestoreRecord, error) {
	list := c.String("initial-members")
	if list == "" {
		if c.IsSet("name") || c.IsSet("cluster-id") {
			return nil, exitf("snapshot restore: --name and --cluster-id need --initial-members (the members of the new cluster)")
		}
		return nil, nil
	}
	cfg := config.Default()
	cfg.Cluster.InitialMembers = strings.Split(list, ",")
	members, err := cfg.Members()
	if err != nil {
		return nil, exitf("snapshot restore: --initial-members: %v", err)
	}
	name := c.String("name")
	var self uint64
	for _, m := range members {
		if fmt.Sprint(m.ID) == name {
			self = m.ID
		}
	}
	if self == 0 {
		return nil, exitf("snapshot restore: --name %q is not an ID listed in --initial-members %q; give this member's node ID", name, list)
	}
	sum, err := fileSHA256(file)
	if err != nil {
		return nil, err
	}
	id := c.Uint64("cluster-id")
	if !c.IsSet("cluster-id") {
		id = app.RestoredClusterID(sum, members)
	} else if id == 0 || id > math.MaxInt64 {
		return nil, exitf("snapshot restore: --cluster-id must be between 1 and %d", int64(math.MaxInt64))
	}
	return &app.RestoreRecord{ClusterID: id, NodeID: self, InitialMembers: app.MemberEntries(members), SnapshotSHA256: hex.EncodeToString(sum)}, nil
}

// fileSHA256 returns the SHA-256 of the file at path.
func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("snapshot restore: read %s: %w", path, err)
	}
	return h.Sum(nil), nil
}
