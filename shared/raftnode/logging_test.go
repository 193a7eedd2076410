package raftnode

import (
	"bytes"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/lni/dragonboat/v4/logger"
)

func TestDragonboatLogRouting(t *testing.T) {
	var buf lockedBuffer
	sink := &logSink{logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), level: slog.LevelInfo}
	attachDragonboatLogs(sink)
	defer detachDragonboatLogs(sink)

	logger.GetLogger("raft").Warningf("election chatter %d", 1)
	logger.GetLogger("raft").Errorf("raft trouble %d", 2)
	logger.GetLogger("transport").Infof("connected %d", 3)
	logger.GetLogger("transport").Warningf("breaker %d", 4)
	logger.GetLogger("dragonboat").Warningf("NodeHost %d", 5)
	logger.GetLogger("dragonboat").Infof("details %d", 6)
	logger.GetLogger("dragonboat").Warningf("StaleRead called, linearizability not guaranteed for stale read")
	out := buf.String()
	for _, want := range []string{"raft trouble 2", "breaker 4", "NodeHost 5", "component=dragonboat/raft"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"election chatter", "connected 3", "details 6", "StaleRead called"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("logs contain %q below the package floor:\n%s", unwanted, out)
		}
	}

	debug := &logSink{logger: sink.logger, level: slog.LevelDebug}
	attachDragonboatLogs(debug)
	logger.GetLogger("raft").Warningf("debug chatter %d", 7)
	detachDragonboatLogs(debug)
	logger.GetLogger("raft").Warningf("back to info %d", 8)
	out = buf.String()
	if !strings.Contains(out, "debug chatter 7") || strings.Contains(out, "back to info 8") {
		t.Errorf("debug level must lift the floors, detaching must restore them:\n%s", out)
	}

	// The runbook's words for dial failures and election timeouts.
	before := len(buf.String())
	sink.network = "chainfire_network"
	var namer atomic.Pointer[PeerNamer]
	fn := PeerNamer(func(addr string) (string, bool) { return "store2", addr == "node2:2380" })
	namer.Store(&fn)
	sink.peers = &namer
	tr := logger.GetLogger("transport")
	for range 3 {
		tr.Errorf(fmtConnectFailed, "a:1", "node2:2380", "dial tcp: connection refused")
		tr.Warningf(fmtBreakerFailed, "a:1", "node2:2380", "dial tcp: connection refused")
	}
	tr.Debugf(fmtStreamUp, "node2:2380")
	logger.GetLogger("raft").Warningf(fmtPreVoteStarted, "[f:1,l:5,t:2,c:5,a:5] [00000:00002] t2")
	logger.GetLogger("raft").Warningf(fmtPreVoteStarted, "[f:1,l:5,t:2,c:5,a:5] [00007:00003] t2")
	out = buf.String()[before:]
	for _, want := range []string{
		`level=ERROR msg="Failed to connect to peer, addr=node2:2380" component=chainfire_network err="dial tcp: connection refused"`,
		`level=ERROR msg="Failed to replicate log, peer=store2" component=flaredb_raft addr=node2:2380`,
		`level=INFO msg="Connected to peer, addr=node2:2380" component=chainfire_network`,
		`level=WARN msg="Election timeout, no heartbeat from leader" component=chainfire_raft shard_id=0 replica_id=2`,
		`level=WARN msg="Election timeout, no heartbeat from leader" component=flaredb_raft shard_id=7 replica_id=3`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "Failed to connect"); n != 1 || strings.Contains(out, "breaker") {
		t.Errorf("a failure streak logs one line (then one per %s), no breaker text; got %d:\n%s", peerRepeat, n, out)
	}

	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "fatal 9") {
				t.Errorf("Panicf recovered %v, want a panic", r)
			}
		}()
		logger.GetLogger("rsm").Panicf("fatal %d", 9)
	}()
}

func TestOpenStateDB(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := OpenStateDB(dir, &pebble.Options{DisableWAL: true}, log, 0); err == nil || !strings.Contains(err.Error(), "DisableWAL") {
		t.Fatalf("DisableWAL accepted: %v", err)
	}
	if _, err := OpenStateDB(dir, nil, nil, 0); err == nil {
		t.Fatal("nil logger accepted")
	}
	opts := &pebble.Options{EventListener: &pebble.EventListener{}}
	db, err := OpenStateDB(dir, opts, log, 0)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger != nil {
		t.Fatal("OpenStateDB modified the caller's options")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	l := stateEventListener(log, 30*time.Second)
	l.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "memtable count limit reached"})
	l.WriteStallEnd()
	if out := buf.String(); !strings.Contains(out, "RocksDB stall detected, duration=") {
		t.Fatalf("no stall line:\n%s", out)
	}
	l.CompactionEnd(pebble.CompactionInfo{TotalDuration: 29 * time.Second})
	if out := buf.String(); strings.Contains(out, "Compaction is slow") {
		t.Fatalf("a compaction under the threshold was logged as slow:\n%s", out)
	}
	l.CompactionEnd(pebble.CompactionInfo{TotalDuration: 30*time.Second + 200*time.Millisecond})
	if out := buf.String(); !strings.Contains(out, "Compaction is slow, duration=30s") {
		t.Fatalf("no slow compaction line in the runbook's form:\n%s", out)
	}
	var b bytes.Buffer
	pebbleLogger{log: slog.New(slog.NewTextHandler(&b, nil))}.Infof("hello %d", 1)
	if !strings.Contains(b.String(), "hello 1") {
		t.Fatalf("pebble Infof lost: %s", b.String())
	}
}
