package raftnode

import (
	"errors"
	"strings"
	"syscall"

	pebblevfs "github.com/cockroachdb/pebble/vfs"
)

// How far ahead of the writes a LogDB WAL's size is extended (see
// walExtendingFS): as far as it was already written, within these bounds,
// so the WALs of idle LogDB partitions stay small.
const (
	walExtendMin = 64 << 10
	walExtendMax = 1 << 20
)

// dragonboat's LogDB (pebble v1) writes each raft update to a WAL and
// fdatasyncs it before the update counts as persisted. A new WAL grows with
// every write: pebble preallocates its blocks with FALLOC_FL_KEEP_SIZE, so
// the file size still changes on each write and every fdatasync commits that
// metadata change too (a journal commit on ext4). Only once a WAL is
// recycled (after the first memtable flush, 4 MiB of log with the Tiny
// preset) do syncs write data alone. etcd avoids the same cost by
// extending its WAL files to 64 MiB when it creates them.
//
// walExtendingFS wraps pebble v1's default filesystem, which only the LogDB
// uses in this process (the state DB is pebble v2): a new WAL ("*.log") is
// extended with fallocate(2) ahead of the writes (by what it holds, 64 KiB
// to 1 MiB), so an fdatasync changes the file size once per step only. What lies
// between the last record and the extended end reads as zeros, which pebble
// treats as the end of the log, exactly like the tail of a preallocated or
// recycled WAL; a WAL closed cleanly ends with pebble's EOF trailer before
// the zeros. dragonboat refuses other filesystems in its config (its LogDB
// factory panics on anything but its own, error-injecting or in-memory ones),
// hence the package variable.
type walExtendingFS struct {
	pebblevfs.FS
}

func init() {
	pebblevfs.Default = walExtendingFS{FS: pebblevfs.Default}
}

// Create implements pebblevfs.FS.
func (fs walExtendingFS) Create(name string) (pebblevfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	fd, ok := f.(interface{ Fd() uintptr })
	if !ok {
		return f, nil
	}
	return &walFile{File: f, fd: int(fd.Fd())}, nil
}

// walFile extends its size ahead of a write that would grow it. Write and Sync are never called concurrently (pebblevfs.File).
type walFile struct {
	pebblevfs.File
	fd       int
	written  int64 // bytes written so far (the file offset)
	extended int64 // the file size the last fallocate set
	off      bool  // the filesystem cannot extend files: just write
}

// Fd returns the file descriptor, so pebble syncs the WAL with fdatasync
// and sync_file_range as it does for its own files.
func (f *walFile) Fd() uintptr { return uintptr(f.fd) }

// Write implements io.Writer.
func (f *walFile) Write(p []byte) (int, error) {
	if end := f.written + int64(len(p)); end > f.extended && !f.off {
		size := end + min(max(end, walExtendMin), walExtendMax)
		switch err := syscall.Fallocate(f.fd, 0, f.extended, size-f.extended); {
		case err == nil:
			f.extended = size
		case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS):
			f.off = true
		}
		// Any other error (e.g. ENOSPC) leaves the file as pebble would have
		// it; the write reports what matters.
	}
	n, err := f.File.Write(p)
	f.written += int64(n)
	return n, err
}
