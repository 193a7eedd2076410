package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	"github.com/centra-cloud/centra/chainfire"
	"github.com/centra-cloud/centra/config"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
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
				Name: "restore", Usage: "restore FILE --data-dir DIR: load a snapshot taken from centra or from etcd into a new data directory, then start a new cluster on it (bootstrap = true)", ArgsUsage: "FILE",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "data-dir", Required: true, Usage: "new data directory (storage.data_dir of the node to start); must not hold data"},
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

// snapshotRestore loads FILE into DIR/state.
func snapshotRestore(c *cli.Context) error {
	if c.NArg() != 1 {
		return exitf("snapshot restore: give the snapshot FILE")
	}
	dir := c.String("data-dir")
	cfg := config.Default()
	cfg.Storage.DataDir = dir
	for _, sub := range []string{cfg.StateDir(), cfg.RaftDir()} {
		if entries, err := os.ReadDir(sub); err == nil && len(entries) > 0 {
			return exitf("snapshot restore: %s already holds data; restore into a new data directory", sub)
		}
	}
	p := &progress{w: c.App.ErrWriter}
	info, err := chainfire.Restore(c.Args().First(), cfg.StateDir(), chainfire.RestoreOptions{
		SkipHashCheck: c.Bool("skip-hash-check"),
		Progress:      func(n int) { p.report(false, "Restoring: %d key versions", n) },
	})
	if err != nil {
		return err
	}
	p.report(true, "Restoring: %d key versions", info.Versions)
	abs, _ := filepath.Abs(dir)
	fmt.Fprintf(stdoutOf(c), "Restored revision %d (%d key versions, %d leases, compacted at %d) into %s.\n"+
		"Start the first member on it with storage.data_dir = %q and bootstrap = true (initial_members lists the new cluster; restore the same file on each initial member).\n",
		info.Revision, info.Versions, info.Leases, info.Compacted, abs, abs)
	return nil
}
