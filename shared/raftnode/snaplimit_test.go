package raftnode

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/statemachine"
)

// TestSnapshotLimitsCapConcurrency runs more streams than the limit and
// checks that no more than the limit were ever in flight, that InFlight
// reports them, that a waiting stream gives up when done closes, and that
// only completed streams count in Totals.
func TestSnapshotLimitsCapConcurrency(t *testing.T) {
	for _, limit := range []int{1, 3} {
		l := NewSnapshotLimits(limit, limit)
		var cur, peak atomic.Int64
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				release, err := l.enterSend(nil)
				if err != nil {
					t.Error(err)
					return
				}
				n := cur.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				if s, _ := l.InFlight(); s > int64(limit) {
					t.Errorf("InFlight sending = %d, limit %d", s, limit)
				}
				time.Sleep(5 * time.Millisecond)
				cur.Add(-1)
				var err2 error
				if i == 0 {
					err2 = errors.New("stream failed")
				}
				release(err2)
			}()
		}
		wg.Wait()
		if p := peak.Load(); p != int64(limit) {
			t.Fatalf("limit %d: peak concurrency %d", limit, p)
		}
		if sent, recv := l.Totals(); sent != 7 || recv != 0 {
			t.Fatalf("limit %d: totals sent %d received %d, want 7 (one failed) and 0", limit, sent, recv)
		}
		if s, r := l.InFlight(); s != 0 || r != 0 {
			t.Fatalf("in flight after all streams: %d, %d", s, r)
		}
	}
	// A receiver waiting for a slot stops with the state machine.
	l := NewSnapshotLimits(0, 1)
	release, err := l.enterRecv(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	close(done)
	if _, err := l.enterRecv(done); !errors.Is(err, statemachine.ErrSnapshotStopped) {
		t.Fatalf("waiting receiver after done: %v", err)
	}
	if _, r := l.InFlight(); r != 1 {
		t.Fatalf("receiving in flight = %d, want 1", r)
	}
	release(nil)
	// No limit and a nil *SnapshotLimits never block.
	var none *SnapshotLimits
	if rel, err := none.enterSend(nil); err != nil {
		t.Fatal(err)
	} else {
		rel(nil)
	}
	if s, r := none.InFlight(); s != 0 || r != 0 {
		t.Fatal("nil limits report streams")
	}
}
