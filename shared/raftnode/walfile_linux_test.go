package raftnode

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pebblev1 "github.com/cockroachdb/pebble"
)

// TestLogDBWALReplaysAfterCrash writes synced batches through pebble v1
// (the LogDB's engine, with the default filesystem this package installs)
// with a memtable small enough to rotate the WAL several times. Every WAL
// is extended ahead of its writes, and a copy of the directory taken while
// the DB is open (as after a crash: the last WAL has no EOF trailer and a
// zero-filled tail) opens and holds every synced write.
func TestLogDBWALReplaysAfterCrash(t *testing.T) {
	dir := t.TempDir()
	opts := func() *pebblev1.Options {
		return &pebblev1.Options{MemTableSize: 256 << 10, Logger: checkLogger{}}
	}
	db, err := pebblev1.Open(dir, opts())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 3000
	value := strings.Repeat("v", 300)
	for i := range n {
		if err := db.Set(fmt.Appendf(nil, "k%05d", i), []byte(value), pebblev1.Sync); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			checkWALExtended(t, dir)
		}
	}
	checkWALExtended(t, dir)

	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	db2, err := pebblev1.Open(crashed, opts())
	if err != nil {
		t.Fatalf("open a copy of a running LogDB (as after a crash): %v", err)
	}
	defer db2.Close()
	for i := range n {
		k := fmt.Appendf(nil, "k%05d", i)
		v, closer, err := db2.Get(k)
		if err != nil {
			t.Fatalf("synced write %s missing after the crash: %v", k, err)
		}
		if string(v) != value {
			t.Fatalf("synced write %s has %d bytes after the crash, want %d", k, len(v), len(value))
		}
		closer.Close()
	}
}

// checkWALExtended fails unless every WAL in dir is at least walExtendMin
// bytes long (after one small write it holds a few hundred bytes).
func checkWALExtended(t *testing.T, dir string) {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no WAL in %s (%v)", dir, err)
	}
	for _, l := range logs {
		fi, err := os.Stat(l)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() < walExtendMin {
			t.Errorf("WAL %s is %d bytes, want it extended to at least %d: is walExtendingFS still pebble v1's default filesystem?", l, fi.Size(), walExtendMin)
		}
	}
}

// copyDir copies the regular files of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err == nil {
			_, err = io.Copy(out, in)
			err = errors.Join(err, out.Close())
		}
		in.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}
