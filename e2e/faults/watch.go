//go:build e2e && faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// resumeEvery is how often the watcher drops its watch on purpose and
// resumes it from the revision after the last one it received, on the
// next endpoint.
const resumeEvery = 3 * time.Second

// watchEvent is one event the watcher received.
type watchEvent struct {
	Rev    int64
	Key    string
	Value  string
	Delete bool
}

func (e watchEvent) String() string {
	if e.Delete {
		return fmt.Sprintf("rev %d delete %s", e.Rev, e.Key)
	}
	return fmt.Sprintf("rev %d put %s=%q", e.Rev, e.Key, e.Value)
}

// watcher watches a prefix through the faults and checks etcd's watch
// guarantees: revisions strictly increase from one response to the next
// and never decrease within one (ordered, no duplicates, every event of a
// revision in one response); after the run, the events equal those of a
// fresh watch from the same start revision (no gaps, nothing invented),
// although the watch was resumed from a revision after every reconnect.
type watcher struct {
	prefix string
	from   int64 // the first revision watched

	mu       sync.Mutex
	events   []watchEvent
	problems []string
	resumes  int
}

// run watches until ctx ends, resuming through clis (one per node) in
// turn.
func (w *watcher) run(ctx context.Context, clis []*clientv3.Client) {
	for i := 0; ctx.Err() == nil; i++ {
		w.watchOnce(ctx, clis[i%len(clis)])
		w.mu.Lock()
		w.resumes++
		w.mu.Unlock()
	}
}

// next is the revision to resume from.
func (w *watcher) next() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.events) == 0 {
		return w.from
	}
	return w.events[len(w.events)-1].Rev + 1
}

// watchOnce watches from next() through cli until resumeEvery passes,
// the watch fails or ctx ends. A watch that fails for want of a leader or
// a connection is resumed; one whose start revision was compacted away
// cannot be, and is a problem.
func (w *watcher) watchOnce(ctx context.Context, cli *clientv3.Client) {
	wctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), resumeEvery)
	defer cancel()
	for resp := range cli.Watch(wctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(w.next())) {
		if err := resp.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				w.problem("watch from revision %d: %v", w.next(), err)
			}
			return
		}
		w.add(resp.Events)
	}
}

func (w *watcher) add(evs []*clientv3.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, ev := range evs {
		e := watchEvent{Rev: ev.Kv.ModRevision, Key: string(ev.Kv.Key), Value: string(ev.Kv.Value), Delete: ev.Type == clientv3.EventTypeDelete}
		if n := len(w.events); n > 0 {
			last := w.events[n-1]
			if i == 0 && e.Rev <= last.Rev {
				w.problems = append(w.problems, fmt.Sprintf("a response starts with %v after %v: out of order, duplicate or a revision split across responses", e, last))
			} else if e.Rev < last.Rev {
				w.problems = append(w.problems, fmt.Sprintf("%v after %v in one response: out of order", e, last))
			}
		}
		w.events = append(w.events, e)
	}
}

func (w *watcher) problem(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
}

// check waits until the watcher has received every event up to the
// prefix's last revision (read linearizably through cli), stops it with
// stop, and compares its events with a fresh watch from the start. It
// returns the guarantee violations found.
func (w *watcher) check(ctx context.Context, cli *clientv3.Client, stop func(), done <-chan struct{}) ([]string, error) {
	resp, err := cli.Get(ctx, w.prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil {
		return nil, fmt.Errorf("read the last revision of %s: %w", w.prefix, err)
	}
	var last int64
	if len(resp.Kvs) > 0 {
		last = resp.Kvs[0].ModRevision
	}
	err = framework.WaitForCtx(ctx, func() error {
		if at := w.next() - 1; at < last {
			return fmt.Errorf("the watcher did not reach revision %d (at %d)", last, at)
		}
		return nil
	})
	stop()
	<-done
	if err != nil {
		return nil, err
	}
	want, err := replay(ctx, cli, w.prefix, w.from, last)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	problems := slices.Clone(w.problems)
	got := w.events
	for i := 0; i < max(len(got), len(want)); i++ {
		switch {
		case i >= len(got):
			problems = append(problems, fmt.Sprintf("the watcher missed %v and %d later event(s)", want[i], len(want)-i-1))
		case i >= len(want):
			problems = append(problems, fmt.Sprintf("the watcher received %v beyond the history", got[i]))
		case got[i] != want[i]:
			problems = append(problems, fmt.Sprintf("event %d: the watcher received %v, the history has %v", i, got[i], want[i]))
		default:
			continue
		}
		break
	}
	return problems, nil
}

// replay returns the events of prefix from revision from through last by
// a fresh watch.
func replay(ctx context.Context, cli *clientv3.Client, prefix string, from, last int64) ([]watchEvent, error) {
	if last < from {
		return nil, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ref := &watcher{prefix: prefix, from: from}
	for resp := range cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if err := resp.Err(); err != nil {
			return nil, fmt.Errorf("replay watch from revision %d: %w", from, err)
		}
		ref.add(resp.Events)
		if ref.next() > last {
			return ref.events, nil
		}
	}
	return nil, errors.New("replay watch ended before the last revision: " + ctx.Err().Error())
}
