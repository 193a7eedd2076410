package watch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	"github.com/centra-cloud/centra/gen/mvccpb"
)

func event(rev int64, key string) mvcc.Event {
	return mvcc.Event{Type: mvccpb.Event_PUT, KV: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}
}

// TestSlowWatcherFallsBackToStorage publishes more revisions than the ring
// holds before a watcher starts: the old ones must come from storage, the
// rest from the ring, each exactly once and in order.
func TestSlowWatcherFallsBackToStorage(t *testing.T) {
	const total = ringRevisions + 1000
	var history []mvcc.Event
	storageReads := 0
	hub := NewHub(func(from, to int64, max int, _ bool) ([]mvcc.Event, int64, error) {
		storageReads++
		var out []mvcc.Event
		for _, ev := range history {
			r := ev.KV.ModRevision
			if r >= from && r <= to {
				if len(out) >= max {
					return out, r - 1, nil
				}
				out = append(out, ev)
			}
		}
		return out, to, nil
	})
	hub.Reset(0, 0)
	for rev := int64(1); rev <= total; rev++ {
		key := "other"
		if rev%2 == 0 {
			key = "k"
		}
		ev := event(rev, key)
		history = append(history, ev)
		hub.Publish(rev, 0, []mvcc.Event{ev})
	}
	w := hub.NewWatcher(Filter{Key: []byte("k")}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []int64
	_, err := hub.Run(ctx, w, func(b Batch) error {
		for _, ev := range b.Events {
			got = append(got, ev.KV.ModRevision)
		}
		if len(got) == total/2 {
			cancel()
		}
		return nil
	})
	if err != context.Canceled && len(got) != total/2 {
		t.Fatalf("run: %v after %d events", err, len(got))
	}
	for i, rev := range got {
		if rev != int64(2*(i+1)) {
			t.Fatalf("event %d has revision %d, want %d", i, rev, 2*(i+1))
		}
	}
	if len(got) != total/2 || storageReads == 0 {
		t.Fatalf("got %d events with %d storage reads", len(got), storageReads)
	}
}

func TestCompactedWatcher(t *testing.T) {
	hub := NewHub(func(int64, int64, int, bool) ([]mvcc.Event, int64, error) { return nil, 0, fmt.Errorf("unused") })
	hub.Reset(10, 5)
	rev, err := hub.Run(context.Background(), hub.NewWatcher(Filter{Key: []byte("k")}, 3), func(Batch) error { return nil })
	if err != ErrCompacted || rev != 5 {
		t.Fatalf("got %d %v", rev, err)
	}
}
