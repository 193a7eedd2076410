// Package watch delivers Chainfire's change events to watchers.
//
// Every replica applies the same log, so every replica can serve watches.
// The Hub learns each new revision after its raft batch is committed to
// pebble and keeps the most recent revisions in a ring; a watcher that is
// behind the ring (it started at an old revision, or it is slow) reads the
// history from storage instead. Each watcher keeps its own cursor (the next
// revision it needs) and only advances it after the events were sent, so
// nothing is lost and nothing is sent twice, whatever the speed of the
// consumer: a slow consumer simply falls back to storage reads.
package watch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	"github.com/centra-cloud/centra/gen/mvccpb"
)

// ErrCompacted is returned by Run when the watcher needs revisions that were
// compacted away.
var ErrCompacted = errors.New("watch: required revision has been compacted")

// Source reads event history from storage; see mvcc.Store.Events.
type Source func(from, to int64, max int, withPrev bool) ([]mvcc.Event, int64, error)

// ringRevisions is how many recent revisions the hub keeps in memory.
const ringRevisions = 4096

// maxEventsPerResponse bounds one response's events (whole revisions are
// never split, so a single large transaction can exceed it).
const maxEventsPerResponse = 1000

type revEvents struct {
	rev    int64
	events []mvcc.Event
}

// Hub fans committed revisions out to watchers. It is safe for concurrent
// use.
type Hub struct {
	src Source

	mu        sync.Mutex
	rev       int64 // newest published revision
	compacted int64
	ring      []revEvents // consecutive revisions ending at rev
	notify    chan struct{}

	prevKVWatchers atomic.Int64 // running watchers with Filter.PrevKV
}

// WantPrev reports whether a running watcher wants the replaced versions:
// the apply path reads them for the events it publishes only then. Events
// published without them (mvcc.Event.PrevUnread) are read from storage by
// a watcher that wants them.
func (h *Hub) WantPrev() bool { return h.prevKVWatchers.Load() > 0 }

// NewHub returns a hub reading history from src.
func NewHub(src Source) *Hub {
	return &Hub{src: src, notify: make(chan struct{})}
}

// Reset sets the current and compacted revisions and empties the ring; it is
// called when the state was (re)loaded.
func (h *Hub) Reset(rev, compacted int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev, h.compacted, h.ring = rev, compacted, nil
	h.wakeLocked()
}

func (h *Hub) wakeLocked() {
	close(h.notify)
	h.notify = make(chan struct{})
}

// Publish announces committed changes. events must be ordered and carry the
// replaced version (Prev) or say that it was not read (PrevUnread); their
// revisions must follow the last published one.
func (h *Hub) Publish(rev, compacted int64, events []mvcc.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(events) > 0 {
		r := events[0].KV.ModRevision
		n := 1
		for n < len(events) && events[n].KV.ModRevision == r {
			n++
		}
		if len(h.ring) > 0 && h.ring[len(h.ring)-1].rev != r-1 {
			h.ring = nil // a gap: never serve across it from memory
		}
		h.ring = append(h.ring, revEvents{rev: r, events: events[:n:n]})
		events = events[n:]
	}
	if over := len(h.ring) - ringRevisions; over > 0 {
		// Drop from the front without copying the ring on every publish;
		// append reallocates (copying only the kept part) when it must.
		clear(h.ring[:over])
		h.ring = h.ring[over:]
	}
	if rev != h.rev || compacted != h.compacted {
		h.rev, h.compacted = rev, compacted
		h.wakeLocked()
	}
}

// Revision returns the newest published revision.
func (h *Hub) Revision() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev
}

func (h *Hub) state() (rev, compacted int64, notify <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev, h.compacted, h.notify
}

// read returns events from revision from up to at most to, from the ring
// when it covers from, else from storage.
func (h *Hub) read(from, to int64, withPrev bool) ([]mvcc.Event, int64, error) {
	h.mu.Lock()
	if n := len(h.ring); n > 0 && h.ring[0].rev <= from {
		var out []mvcc.Event
		last := from - 1
		unread := false
		for _, re := range h.ring[from-h.ring[0].rev:] {
			if re.rev > to || len(out) >= maxEventsPerResponse {
				break
			}
			for _, ev := range re.events {
				unread = unread || ev.PrevUnread
			}
			out = append(out, re.events...)
			last = re.rev
		}
		h.mu.Unlock()
		if (last < from && to >= from) || (withPrev && unread) {
			// A revision without events cannot be in the ring, and events
			// published without their replaced versions lack what this
			// watcher wants; fall back.
			return h.src(from, to, maxEventsPerResponse, withPrev)
		}
		return out, last, nil
	}
	h.mu.Unlock()
	return h.src(from, to, maxEventsPerResponse, withPrev)
}

// Filter selects what a watcher receives.
type Filter struct {
	Key, End        []byte // etcd range conventions
	NoPut, NoDelete bool
	PrevKV          bool
}

func (f *Filter) match(ev mvcc.Event) bool {
	if (f.NoPut && ev.Type == mvccpb.Event_PUT) || (f.NoDelete && ev.Type == mvccpb.Event_DELETE) {
		return false
	}
	return mvcc.InRange(ev.KV.Key, f.Key, f.End)
}

// Batch is what a watcher sends at once: matching events up to Revision.
type Batch struct {
	Events   []mvcc.Event
	Revision int64
}

// Watcher is one watch: a filter and a cursor.
type Watcher struct {
	Filter
	// ProgressInterval, when > 0, sends an empty Batch after that long
	// without events (etcd's progress notify).
	ProgressInterval time.Duration

	next atomic.Int64
}

// NewWatcher returns a watcher that starts at revision start (0 = after the
// current revision).
func (h *Hub) NewWatcher(f Filter, start int64) *Watcher {
	w := &Watcher{Filter: f}
	if start <= 0 {
		start = h.Revision() + 1
	}
	w.next.Store(start)
	return w
}

// Delivered returns the revision up to which every event was sent.
func (w *Watcher) Delivered() int64 { return w.next.Load() - 1 }

// Run sends the watcher's events until ctx ends or send fails. It returns
// ErrCompacted (with the compaction revision) when the watcher's cursor is
// below the compacted revision. send must not keep the Batch's Events after
// it returns: their slice is reused for the next batch.
func (h *Hub) Run(ctx context.Context, w *Watcher, send func(Batch) error) (compactRev int64, err error) {
	var tick <-chan time.Time
	if w.ProgressInterval > 0 {
		t := time.NewTicker(w.ProgressInterval)
		defer t.Stop()
		tick = t.C
	}
	if w.PrevKV {
		h.prevKVWatchers.Add(1)
		defer h.prevKVWatchers.Add(-1)
	}
	idle := true
	var matched []mvcc.Event
	for {
		rev, compacted, notify := h.state()
		next := w.next.Load()
		if next < compacted {
			return compacted, ErrCompacted
		}
		if next <= rev {
			events, last, err := h.read(next, rev, w.PrevKV)
			if err != nil {
				return 0, err
			}
			matched = matched[:0]
			for _, ev := range events {
				if w.match(ev) {
					if !w.PrevKV {
						ev.Prev = nil
					}
					matched = append(matched, ev)
				}
			}
			if len(matched) > 0 {
				if err := send(Batch{Events: matched, Revision: rev}); err != nil {
					return 0, err
				}
				idle = false
			}
			w.next.Store(last + 1)
			continue
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-notify:
		case <-tick:
			if idle {
				if err := send(Batch{Revision: w.Delivered()}); err != nil {
					return 0, err
				}
			}
			idle = true
		}
	}
}
