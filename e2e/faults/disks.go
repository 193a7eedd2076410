//go:build e2e && faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/e2e/framework"
	"github.com/centra-cloud/centra/shared/diskguard"
)

// diskSize is the size of each node's data filesystem (tmpfs, so RAM):
// room for a node's pebble stores and raft log in a run, small enough to
// fill at once.
const diskSize = 256 << 20

// minFree is the nodes' storage.min_free_bytes in disk-full runs (the
// default, 1 GiB, exceeds the whole tmpfs), and fillSlack what the
// disk-full fault leaves free: below the threshold, so the guard refuses
// writes, with room for what a node still writes until its NOSPACE alarm
// commits (pebble flushes of the framework's 4 MiB memtables, raft
// entries in flight).
const (
	minFree   = 64 << 20
	fillSlack = minFree / 2
)

// disks gives every node its data directory on a tmpfs of its own, that
// the disk-full fault fills with a ballast file.
type disks struct {
	t      *testing.T
	mounts []string
	// filled are the indexes of the nodes whose disk was filled: none of
	// them may exit (the free-space guard must keep pebble and the raft
	// log from meeting ENOSPC).
	filled map[int]bool
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

// fill fills n's filesystem with a ballast file up to fillSlack free,
// waits until n raised NOSPACE (its free-space guard), holds for f.Hold
// while traffic runs into the refusals, removes the ballast and waits
// until n cleared the alarm. n must not exit meanwhile.
func (d *disks) fill(ctx context.Context, c *framework.Cluster, n *framework.Node, f fault) error {
	mount := d.mounts[n.Index]
	ballast := filepath.Join(mount, "ballast")
	free, err := fillTo(ballast, fillSlack)
	if err != nil {
		return err
	}
	d.filled[n.Index] = true
	d.t.Logf("%s: data filesystem %s filled to %d bytes free", n, mount, free)
	cli, err := c.NewClient(c.Endpoints()...)
	if err != nil {
		return err
	}
	defer cli.Close()
	filled := time.Now()
	if err := waitNoSpace(ctx, cli, n.ID, true); err != nil {
		return errors.Join(fmt.Errorf("%s with %d bytes free (min_free_bytes %d): %w", n, free, minFree, err), d.exited(c), os.Remove(ballast))
	}
	d.t.Logf("%s raised NOSPACE %v after its disk filled", n, time.Since(filled).Round(time.Millisecond))
	hold(f)
	if err := os.Remove(ballast); err != nil {
		return err
	}
	freed := time.Now()
	if err := waitNoSpace(ctx, cli, n.ID, false); err != nil {
		return errors.Join(fmt.Errorf("%s once its disk has room again: %w", n, err), d.exited(c))
	}
	d.t.Logf("%s cleared NOSPACE %v after the ballast was removed", n, time.Since(freed).Round(time.Millisecond))
	return d.exited(c)
}

// waitNoSpace waits until member id's NOSPACE alarm is raised (on) or
// cleared.
func waitNoSpace(ctx context.Context, cli *clientv3.Client, id uint64, on bool) error {
	want := map[bool]string{true: "raised", false: "cleared"}[on]
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		al, err := cli.AlarmList(ctx)
		if err == nil && slices.ContainsFunc(al.Alarms, func(a *etcdserverpb.AlarmMember) bool {
			return a.MemberID == id && a.Alarm == etcdserverpb.AlarmType_NOSPACE
		}) == on {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("NOSPACE alarm not %s: %w (last alarm list error: %v)", want, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exited is an error naming every node whose disk was filled and that
// exited (with its crash and the cause from its log); nil if none.
func (d *disks) exited(c *framework.Cluster) error {
	var errs []error
	for _, n := range c.Nodes() {
		if d == nil || !d.filled[n.Index] || n.Running() {
			continue
		}
		errs = append(errs, fmt.Errorf("%s exited on or after a full disk: %s; %s", n, strings.Join(n.TakeCrashes(), "; "), exitCause(n.CurrentLog())))
	}
	return errors.Join(errs...)
}

// fillTo writes zeros to path until its filesystem has at most slack
// bytes free, and returns what is left.
func fillTo(path string, slack uint64) (uint64, error) {
	fh, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	buf := make([]byte, 1<<20)
	for {
		free, err := diskguard.Available(filepath.Dir(path))
		if err != nil || free <= slack {
			return free, err
		}
		n := min(uint64(len(buf)), free-slack)
		if _, err := fh.Write(buf[:n]); err != nil {
			return 0, fmt.Errorf("fill %s: %w", path, err)
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
