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
	flaredb "github.com/centra-cloud/centra/flaredb/client"
	"github.com/centra-cloud/centra/shared/diskguard"
)

// diskSize is the size of each node's data filesystem (tmpfs, so RAM):
// room for a node's pebble stores and raft log in a run, small enough to
// fill at once.
const diskSize = 256 << 20

// storeDiskSize is a store's: more, as a store's pebble (state/) grows in
// steps of ~71 MiB, a preallocated WAL per memtable switch (a snapshot or
// a joining replica's ingest switches it), to ~212 MiB after two switches
// (du, seed 4200, move-replica), which on 256 MiB would leave a store
// short of space without the fault. tmpfs costs only what is written.
const storeDiskSize = 1 << 30

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

// disks gives every node (and every store after them) its data directory
// on a tmpfs of its own, that the disk-full fault fills with a ballast
// file.
type disks struct {
	t      *testing.T
	mounts []string
	// filled are the nodes and stores whose disk was filled: none of them
	// may exit (the free-space guard must keep pebble and the raft log
	// from meeting ENOSPC).
	filled map[*framework.Node]bool
}

// newDisks mounts nodes tmpfs filesystems of diskSize, then stores of
// storeDiskSize, unmounted when the test ends (after the cluster's
// processes stopped: call it before framework.NewCluster).
func newDisks(t *testing.T, nodes, stores int) (*disks, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("a tmpfs per node needs root (mount -t tmpfs)")
	}
	d := &disks{t: t, filled: map[*framework.Node]bool{}}
	t.Cleanup(func() {
		for _, m := range d.mounts {
			if out, err := exec.Command("umount", m).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", m, err, out)
				continue
			}
			_ = os.Remove(m)
		}
	})
	for i := range nodes + stores {
		m, err := os.MkdirTemp("", fmt.Sprintf("centra-faults-disk%d-", i))
		if err != nil {
			return nil, err
		}
		size := diskSize
		if i >= nodes {
			size = storeDiskSize
		}
		out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", m).CombinedOutput()
		if err != nil {
			_ = os.Remove(m)
			return nil, fmt.Errorf("mount -t tmpfs on %s: %v: %s", m, err, strings.TrimSpace(string(out)))
		}
		d.mounts = append(d.mounts, m)
	}
	return d, nil
}

// dataDir is a fresh data directory on filesystem i (framework.WithDataDirs:
// the nodes', then the stores').
func (d *disks) dataDir(i int) (string, error) { return os.MkdirTemp(d.mounts[i], "data-") }

// mount is n's filesystem.
func (d *disks) mount(c *framework.Cluster, n *framework.Node) string {
	if n.IsStore() {
		return d.mounts[len(c.Nodes())+n.Index]
	}
	return d.mounts[n.Index]
}

// fill fills n's filesystem with a ballast file up to fillSlack free,
// waits until n refuses writes (a node raised NOSPACE; a store reported
// disk_low to PD, which tells the leaders of its regions), holds for
// f.Hold while traffic runs into the refusals, removes the ballast and
// waits until n accepts writes again. n must not exit meanwhile.
func (d *disks) fill(ctx context.Context, c *framework.Cluster, n *framework.Node, f fault) error {
	short := d.noSpaceAlarm(c, n)
	if n.IsStore() {
		short = d.storeDiskLow(c, n)
	}
	mount := d.mount(c, n)
	ballast := filepath.Join(mount, "ballast")
	free, err := fillTo(ballast, fillSlack)
	if err != nil {
		return err
	}
	d.filled[n] = true
	d.t.Logf("%s: data filesystem %s filled to %d bytes free", n, mount, free)
	filled := time.Now()
	if err := short(ctx, true); err != nil {
		return errors.Join(fmt.Errorf("%s with %d bytes free (min_free_bytes %d): %w", n, free, minFree, err), d.exited(c), os.Remove(ballast))
	}
	d.t.Logf("%s refuses writes %v after its disk filled", n, time.Since(filled).Round(time.Millisecond))
	hold(f)
	if err := os.Remove(ballast); err != nil {
		return err
	}
	freed := time.Now()
	if err := short(ctx, false); err != nil {
		return errors.Join(fmt.Errorf("%s once its disk has room again: %w", n, err), d.exited(c))
	}
	d.t.Logf("%s accepts writes again %v after the ballast was removed", n, time.Since(freed).Round(time.Millisecond))
	return d.exited(c)
}

// noSpaceAlarm waits until control-plane node n's NOSPACE alarm is raised
// (on) or cleared.
func (d *disks) noSpaceAlarm(c *framework.Cluster, n *framework.Node) func(ctx context.Context, on bool) error {
	return func(ctx context.Context, on bool) error {
		cli, err := c.NewClient(c.Endpoints()...)
		if err != nil {
			return err
		}
		defer cli.Close()
		return waitNoSpace(ctx, cli, n.ID, on)
	}
}

// storeDiskLow waits until PD shows store n's disk_low as on; once it is
// off, until a put of probeKey to the strong namespace succeeds (the
// leaders learned it too).
func (d *disks) storeDiskLow(c *framework.Cluster, n *framework.Node) func(ctx context.Context, on bool) error {
	return func(ctx context.Context, on bool) error {
		if err := waitDiskLow(ctx, c.Node(0), n.StoreID(), on); err != nil || on {
			return err
		}
		cli, err := newFlareDB(c)
		if err != nil {
			return err
		}
		defer cli.Close()
		return waitPut(ctx, cli)
	}
}

// probeKey is the key of the strong namespace that the disk-full fault
// puts to see writes accepted: outside every scan's range (they start at a
// workload key, all of which sort after it).
const probeKey = keyPrefix + "disk-probe"

// waitPut puts probeKey until it succeeds, for 20 s at most.
func waitPut(ctx context.Context, cli *flaredb.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return framework.WaitForCtx(ctx, func() error {
		if err := cli.Put(ctx, strongNS, []byte(probeKey), []byte("x")); err != nil {
			return fmt.Errorf("put %s still failing: %w", probeKey, err)
		}
		return nil
	})
}

// waitDiskLow waits until PD (on control-plane node cp) shows store's
// disk_low as on.
func waitDiskLow(ctx context.Context, cp *framework.Node, store uint64, on bool) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return framework.WaitForCtx(ctx, func() error {
		var st struct { // fresh each time: disk_low is omitted when false
			Status struct {
				DiskLow bool `json:"disk_low"`
			} `json:"status"`
		}
		err := cp.PDGetJSON(ctx, fmt.Sprintf("/store/%d", store), &st)
		if err == nil && st.Status.DiskLow == on {
			return nil
		}
		return fmt.Errorf("PD does not show store %d's disk_low = %v (last error: %v)", store, on, err)
	})
}

// waitNoSpace waits until member id's NOSPACE alarm is raised (on) or
// cleared.
func waitNoSpace(ctx context.Context, cli *clientv3.Client, id uint64, on bool) error {
	want := map[bool]string{true: "raised", false: "cleared"}[on]
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return framework.WaitForCtx(ctx, func() error {
		al, err := cli.AlarmList(ctx)
		if err == nil && slices.ContainsFunc(al.Alarms, func(a *etcdserverpb.AlarmMember) bool {
			return a.MemberID == id && a.Alarm == etcdserverpb.AlarmType_NOSPACE
		}) == on {
			return nil
		}
		return fmt.Errorf("NOSPACE alarm not %s (last alarm list error: %v)", want, err)
	})
}

// exited is an error naming every node or store whose disk was filled and
// that exited (with its crash and the cause from its log); nil if none.
func (d *disks) exited(c *framework.Cluster) error {
	var errs []error
	for _, n := range append(slices.Clone(c.Nodes()), c.Stores()...) {
		if d == nil || !d.filled[n] || n.Running() {
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
