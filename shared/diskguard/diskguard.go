// Package diskguard watches the free space of the filesystem that holds a
// node's data directory, so that the stores refuse new data while there is
// still room for what they must write anyway (the raft entries of commands
// already in flight, the alarm that refuses further writes, pebble's
// flushes and compactions), instead of letting pebble and dragonboat's
// log DB run into ENOSPC, on which both stop the process.
//
// The guard is low from the moment free space drops below MinFree until it
// is back to ResumeFree (MinFree plus a quarter): the gap keeps a disk
// whose fill level hovers around the threshold from flapping writes on and
// off every check.
package diskguard

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/centra-cloud/centra/shared/loop"
)

// Interval is how often Run measures the free space: at the write rates of
// one node (tens of MB/s at most) a second uses a small part of any
// sensible threshold.
const Interval = time.Second

// Guard tracks whether the filesystem of Dir has less than MinFree bytes
// available to unprivileged writers.
type Guard struct {
	dir     string
	minFree atomic.Uint64
	free    atomic.Uint64
	low     atomic.Bool
}

// New returns a guard of dir's filesystem with threshold minFree bytes;
// minFree 0 disables it (never low). It measures once, so that the state
// is right before the first write.
func New(dir string, minFree uint64) (*Guard, error) {
	g := &Guard{dir: dir}
	g.minFree.Store(minFree)
	if minFree == 0 {
		return g, nil
	}
	if err := g.Check(); err != nil {
		return nil, err
	}
	return g, nil
}

// Dir is the directory whose filesystem the guard watches.
func (g *Guard) Dir() string { return g.dir }

// MinFree is the threshold in bytes (0: disabled).
func (g *Guard) MinFree() uint64 { return g.minFree.Load() }

// ResumeFree is the free space at which a low guard is no longer low.
func (g *Guard) ResumeFree() uint64 { m := g.MinFree(); return m + m/4 }

// SetMinFree changes the threshold (0 disables the guard) and measures
// again.
func (g *Guard) SetMinFree(n uint64) error {
	g.minFree.Store(n)
	if n == 0 {
		g.low.Store(false)
		return nil
	}
	return g.Check()
}

// Free is the free space measured last.
func (g *Guard) Free() uint64 { return g.free.Load() }

// Low reports whether free space is short (one atomic load: for the write
// path). A nil guard is never low.
func (g *Guard) Low() bool { return g != nil && g.low.Load() }

// Err is nil while space suffices, else an error naming the directory, its
// free bytes and the threshold.
func (g *Guard) Err() error {
	if !g.Low() {
		return nil
	}
	return &LowSpaceError{Dir: g.dir, Free: g.Free(), MinFree: g.MinFree(), ResumeFree: g.ResumeFree()}
}

// Check measures the free space now and updates Low.
func (g *Guard) Check() error {
	minFree := g.MinFree()
	if minFree == 0 {
		return nil
	}
	free, err := Available(g.dir)
	if err != nil {
		return err
	}
	g.free.Store(free)
	switch low := g.low.Load(); {
	case !low && free < minFree:
		g.low.Store(true)
	case low && free >= minFree+minFree/4:
		g.low.Store(false)
	}
	return nil
}

// Run checks every Interval until ctx ends; after every check it calls
// after (for example to raise or clear an alarm, which may need retries:
// it runs on every check, not only on a change). A failed measurement is
// passed on and leaves the state as it was. Several loops may run on one
// guard (Chainfire's and FlareDB's in one process).
func (g *Guard) Run(ctx context.Context, after func(err error)) {
	if g == nil {
		return
	}
	loop.Every(ctx, Interval, func(time.Time) { after(g.Check()) })
}

// Available returns the bytes of dir's filesystem that an unprivileged
// process may still write (statfs f_bavail: root's reserved blocks do not
// count).
func Available(dir string) (uint64, error) {
	_, available, err := Usage(dir)
	return available, err
}

// Usage returns the size in bytes of dir's filesystem (statfs f_blocks)
// and what Available returns, from one statfs: the store heartbeat
// reports both to PD.
func Usage(dir string) (capacity, available uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	bsize := uint64(st.Bsize) //nolint:gosec // Bsize is a positive block size
	return st.Blocks * bsize, st.Bavail * bsize, nil
}

// LowSpaceError says that a write was refused because the data directory's
// filesystem is short of space.
type LowSpaceError struct {
	Dir                       string
	Free, MinFree, ResumeFree uint64
}

func (e *LowSpaceError) Error() string {
	return fmt.Sprintf("data directory %s has %d bytes free, below storage.min_free_bytes = %d: writes that add data are refused until %d bytes are free (free space on that filesystem or grow it)",
		e.Dir, e.Free, e.MinFree, e.ResumeFree)
}
