package raftnode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	pebblev1 "github.com/cockroachdb/pebble"
)

// TestCheckRaftLog reads the LogDB of a real replica after its Node
// closed: the log is complete up to the last proposal, and after one entry
// in the middle is deleted (with dragonboat's own pebble) the check names
// the missing index. While the node runs, CheckNotRunning refuses.
func TestCheckRaftLog(t *testing.T) {
	c := newCluster(t, nil)
	c.bootstrap(1)
	m := c.members[1]
	c.waitLeader()
	var last uint64
	for i := range 30 {
		last = c.propose(m, fmt.Sprintf("k%d", i), "v")
	}
	if err := CheckNotRunning(filepath.Join(m.dir, "state")); !errors.Is(err, ErrInUse) {
		t.Fatalf("CheckNotRunning on a running node's state DB: %v, want ErrInUse", err)
	}
	m.stop(t)
	if err := CheckNotRunning(filepath.Join(m.dir, "state")); err != nil {
		t.Fatalf("CheckNotRunning on a stopped node: %v", err)
	}
	nhDir := filepath.Join(m.dir, "raft")
	shardLog := func() *ShardLog {
		t.Helper()
		logs, err := CheckRaftLog(nhDir, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range logs {
			if l.ShardID == testShard && l.ReplicaID == 1 {
				return l
			}
		}
		t.Fatalf("no log of shard %d replica 1 among %d", testShard, len(logs))
		return nil
	}
	l := shardLog()
	if len(l.Problems) > 0 || l.LastIndex < last || l.Commit < last || l.Entries == 0 || l.FirstIndex > last-20 {
		t.Fatalf("log of a clean replica (last proposal at %d): %+v", last, l)
	}

	victim := last - 10
	key := make([]byte, 28)
	key[0], key[1] = logEntry, logEntry
	binary.BigEndian.PutUint64(key[4:], testShard)
	binary.BigEndian.PutUint64(key[12:], 1)
	binary.BigEndian.PutUint64(key[20:], victim)
	parts, _ := filepath.Glob(filepath.Join(nhDir, "*", "*", "logdb-*"))
	deleted := false
	for _, dir := range parts {
		db, err := pebblev1.Open(dir, &pebblev1.Options{Logger: checkLogger{}})
		if err != nil {
			t.Fatal(err)
		}
		if _, closer, err := db.Get(key); err == nil {
			closer.Close()
			if err := db.Delete(key, pebblev1.Sync); err != nil {
				t.Fatal(err)
			}
			deleted = true
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if !deleted {
		t.Fatalf("entry %d not found in any LogDB partition", victim)
	}
	l = shardLog()
	want := fmt.Sprintf("entries %d..%d are missing", victim, victim)
	if len(l.Problems) != 1 || !strings.Contains(l.Problems[0], want) {
		t.Fatalf("log with entry %d deleted: problems %q, want one saying %q", victim, l.Problems, want)
	}
}
