//go:build e2e && faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/centra-cloud/centra/e2e/framework"
)

// diskSize is the size of each node's data filesystem (tmpfs, so RAM):
// room for a node's pebble stores and raft log in a run, small enough to
// fill at once.
const diskSize = 256 << 20

// disks gives every node its data directory on a tmpfs of its own, that
// the disk-full fault fills with a ballast file.
type disks struct {
	t      *testing.T
	mounts []string
	// filled are the indexes of the nodes whose disk was filled: pebble
	// may hold on to a write error from then and exit on a later write,
	// seconds after the space came back.
	filled map[int]bool
	// crashes are the nodes' exits on a full disk or after one.
	crashes []string
}

// newDisks mounts n tmpfs filesystems of diskSize, unmounted when the test
// ends (after the cluster's processes stopped: call it before
// framework.NewCluster).
func newDisks(t *testing.T, n int) (*disks, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("a tmpfs per node needs root (mount -t tmpfs)")
	}
	d := &disks{t: t, filled: map[int]bool{}}
	t.Cleanup(func() {
		for _, m := range d.mounts {
			if out, err := exec.Command("umount", m).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", m, err, out)
				continue
			}
			_ = os.Remove(m)
		}
	})
	for i := range n {
		m, err := os.MkdirTemp("", fmt.Sprintf("centra-faults-disk%d-", i))
		if err != nil {
			return nil, err
		}
		out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", diskSize), "tmpfs", m).CombinedOutput()
		if err != nil {
			_ = os.Remove(m)
			return nil, fmt.Errorf("mount -t tmpfs on %s: %v: %s", m, err, strings.TrimSpace(string(out)))
		}
		d.mounts = append(d.mounts, m)
	}
	return d, nil
}

// dataDir is a fresh data directory on node i's filesystem
// (framework.WithDataDirs).
func (d *disks) dataDir(i int) (string, error) { return os.MkdirTemp(d.mounts[i], "data-") }

// fill fills n's filesystem to the last byte with a ballast file, holds
// for f.Hold while traffic runs into the full disk, removes the ballast
// and restarts n if it exited meanwhile (an exit on ENOSPC is allowed;
// losing what it acknowledged is not, which the run's checks see). A
// filled node that exits later is revived by the nemesis.
func (d *disks) fill(ctx context.Context, n *framework.Node, f fault) error {
	mount := d.mounts[n.Index]
	ballast := filepath.Join(mount, "ballast")
	if err := writeUntilFull(ballast); err != nil {
		return err
	}
	d.filled[n.Index] = true
	d.t.Logf("%s: data filesystem %s full", n, mount)
	hold(f)
	if err := os.Remove(ballast); err != nil {
		return err
	}
	_, err := d.revive(n)
	return err
}

// revive restarts n if its disk was filled and it exited since, and
// reports whether it did.
func (d *disks) revive(n *framework.Node) (bool, error) {
	if d == nil || !d.filled[n.Index] || n.Running() {
		return false, nil
	}
	crashes := n.TakeCrashes()
	d.t.Logf("%s exited on or after a full disk: %s; %s", n, strings.Join(crashes, "; "), exitCause(n.CurrentLog()))
	d.crashes = append(d.crashes, crashes...)
	return true, n.Restart()
}

// reviveAll revives every node of c.
func (d *disks) reviveAll(c *framework.Cluster) error {
	for _, n := range c.Nodes() {
		if _, err := d.revive(n); err != nil {
			return err
		}
	}
	return nil
}

// writeUntilFull writes zeros to path until the filesystem says ENOSPC
// even for a page.
func writeUntilFull(path string) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	buf := make([]byte, 1<<20)
	for {
		_, err := fh.Write(buf)
		switch {
		case err == nil:
		case !errors.Is(err, syscall.ENOSPC):
			return fmt.Errorf("fill %s: %w", path, err)
		case len(buf) <= 4096:
			return nil
		default:
			buf = buf[:len(buf)/2]
		}
	}
}

// exitCause picks out of a process's log why it exited: the panic and the
// top of its stack, or the last lines.
func exitCause(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			return "it says:\n" + strings.Join(lines[i:min(len(lines), i+8)], "\n")
		}
	}
	return "its log ends:\n" + strings.Join(lines[max(0, len(lines)-8):], "\n")
}
