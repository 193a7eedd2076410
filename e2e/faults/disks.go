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
	// crashes are the nodes' exits while their disk was full.
	crashes []string
}

// newDisks mounts n tmpfs filesystems of diskSize, unmounted when the test
// ends (after the cluster's processes stopped: call it before
// framework.NewCluster).
func newDisks(t *testing.T, n int) (*disks, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("a tmpfs per node needs root (mount -t tmpfs)")
	}
	d := &disks{t: t}
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
// losing what it acknowledged is not, which the run's checks see).
func (d *disks) fill(ctx context.Context, n *framework.Node, f fault) error {
	mount := d.mounts[n.Index]
	ballast := filepath.Join(mount, "ballast")
	if err := writeUntilFull(ballast); err != nil {
		return err
	}
	d.t.Logf("%s: data filesystem %s full", n, mount)
	hold(f)
	if err := os.Remove(ballast); err != nil {
		return err
	}
	if crashes := n.TakeCrashes(); len(crashes) > 0 {
		d.t.Logf("%s exited on the full disk: %s; %s", n, strings.Join(crashes, "; "), exitCause(n.CurrentLog()))
		d.crashes = append(d.crashes, crashes...)
	}
	if !n.Running() {
		if err := n.Restart(); err != nil {
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
