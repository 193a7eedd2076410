package chainfire

import (
	"context"
	"errors"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/chainfire/internal/watch"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/mvccpb"
)

// progressInterval is how often an idle watcher created with progress_notify
// gets an empty response carrying the current revision (etcd: 10 minutes).
const progressInterval = 10 * time.Minute

// watchService implements etcdserverpb.Watch. One stream multiplexes many
// watchers; each runs in its own goroutine and the stream's sends are
// serialised.
type watchService struct{ s *Server }

type watchStream struct {
	s      *Server
	stream bidiStream[etcdserverpb.WatchRequest, etcdserverpb.WatchResponse]
	ctx    context.Context

	sendMu sync.Mutex

	mu       sync.Mutex
	nextID   int64
	watchers map[int64]*activeWatcher
	wg       sync.WaitGroup
}

type activeWatcher struct {
	w      *watch.Watcher
	cancel context.CancelFunc
}

func (ws *watchService) Watch(ctx context.Context, stream *connect.BidiStream[etcdserverpb.WatchRequest, etcdserverpb.WatchResponse]) error {
	return ws.s.serveWatch(ctx, stream)
}

// serveWatch serves one Watch stream, from Connect (watchService) or
// grpc-go (registerGRPCStreams).
func (s *Server) serveWatch(ctx context.Context, stream bidiStream[etcdserverpb.WatchRequest, etcdserverpb.WatchResponse]) error {
	ctx, cancel := context.WithCancel(ctx)
	st := &watchStream{s: s, stream: stream, ctx: ctx, watchers: map[int64]*activeWatcher{}}
	defer func() {
		cancel()
		st.wg.Wait()
	}()
	for {
		req, err := stream.Receive()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return nil // client closed its side (io.EOF) or the connection broke
		}
		switch r := req.RequestUnion.(type) {
		case *etcdserverpb.WatchRequest_CreateRequest:
			if err := st.create(r.CreateRequest); err != nil {
				return err
			}
		case *etcdserverpb.WatchRequest_CancelRequest:
			if err := st.cancel(r.CancelRequest.WatchId); err != nil {
				return err
			}
		case *etcdserverpb.WatchRequest_ProgressRequest:
			if err := st.progress(); err != nil {
				return err
			}
		}
	}
}

func (st *watchStream) send(resp *etcdserverpb.WatchResponse) error {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	return st.stream.Send(resp)
}

func (st *watchStream) header(rev int64) *etcdserverpb.ResponseHeader {
	return st.s.header(&etcdserverpb.ResponseHeader{Revision: rev})
}

func (st *watchStream) create(c *etcdserverpb.WatchCreateRequest) error {
	f := watch.Filter{Key: c.Key, End: c.RangeEnd, PrevKV: c.PrevKv}
	for _, ft := range c.Filters {
		switch ft {
		case etcdserverpb.WatchCreateRequest_NOPUT:
			f.NoPut = true
		case etcdserverpb.WatchCreateRequest_NODELETE:
			f.NoDelete = true
		}
	}
	hub := st.s.fsm.hub
	if reason := st.s.watchPermitted(st.ctx, st.stream.RequestHeader(), c); reason != "" {
		// etcd's answer: created and cancelled at once, with no watch ID.
		return st.send(&etcdserverpb.WatchResponse{Header: st.header(hub.Revision()), WatchId: -1, Created: true, Canceled: true, CancelReason: reason})
	}
	st.mu.Lock()
	id := c.WatchId
	if id == 0 {
		for st.watchers[st.nextID] != nil {
			st.nextID++
		}
		id = st.nextID
		st.nextID++
	} else if st.watchers[id] != nil {
		st.mu.Unlock()
		return st.send(&etcdserverpb.WatchResponse{Header: st.header(hub.Revision()), WatchId: id, Created: true, Canceled: true, CancelReason: "watch ID already in use"})
	}
	w := hub.NewWatcher(f, c.StartRevision)
	if c.ProgressNotify {
		w.ProgressInterval = progressInterval
	}
	ctx, cancel := context.WithCancel(st.ctx)
	st.watchers[id] = &activeWatcher{w: w, cancel: cancel}
	st.mu.Unlock()

	if err := st.send(&etcdserverpb.WatchResponse{Header: st.header(hub.Revision()), WatchId: id, Created: true}); err != nil {
		cancel()
		return err
	}
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		st.run(ctx, id, w, c.Fragment)
	}()
	return nil
}

// run streams one watcher's events until it is cancelled or compacted;
// fragment: the client accepts a large response split (etcd's fragment).
func (st *watchStream) run(ctx context.Context, id int64, w *watch.Watcher, fragment bool) {
	compactRev, err := st.s.fsm.hub.Run(ctx, w, func(b watch.Batch) error {
		resp := newWatchResponse(st.s, id, b)
		if fragment {
			return st.sendFragments(resp)
		}
		return st.send(resp)
	})
	switch {
	case errors.Is(err, watch.ErrCompacted):
		st.remove(id)
		_ = st.send(&etcdserverpb.WatchResponse{
			Header: st.header(st.s.fsm.hub.Revision()), WatchId: id, Canceled: true,
			CompactRevision: compactRev, CancelReason: ErrCompacted.Error(),
		})
	case err != nil && ctx.Err() == nil:
		st.s.log.Warn("Watch stopped", "watch_id", id, "err", err)
		st.remove(id)
		_ = st.send(&etcdserverpb.WatchResponse{Header: st.header(st.s.fsm.hub.Revision()), WatchId: id, Canceled: true, CancelReason: err.Error()})
	}
}

// watchResponse is an event response with its header and, for the usual
// batch of one event, the event: one allocation per response and watcher
// where there were four. The stream marshals it before send returns, so
// nothing keeps it.
type watchResponse struct {
	resp   etcdserverpb.WatchResponse
	header etcdserverpb.ResponseHeader
	ptrs   [1]*mvccpb.Event
	events [1]mvccpb.Event
}

func newWatchResponse(s *Server, id int64, b watch.Batch) *etcdserverpb.WatchResponse {
	r := &watchResponse{}
	r.header.Revision = b.Revision
	r.resp.Header = s.header(&r.header)
	r.resp.WatchId = id
	ptrs, events := r.ptrs[:], r.events[:]
	if n := len(b.Events); n > 1 {
		ptrs, events = make([]*mvccpb.Event, n), make([]mvccpb.Event, n)
	}
	r.resp.Events = ptrs[:len(b.Events)]
	for i, ev := range b.Events {
		e := &events[i]
		e.Type, e.Kv, e.PrevKv = ev.Type, ev.KV, ev.Prev
		r.resp.Events[i] = e
	}
	return &r.resp
}

// watchEventTagSize is the encoded size of the tag of WatchResponse.events.
var watchEventTagSize = protowire.SizeTag((&etcdserverpb.WatchResponse{}).ProtoReflect().Descriptor().Fields().ByName("events").Number())

// sendFragments sends resp as etcd does to a watcher created with
// fragment: a response of maxRequestBytes or more with several events goes
// out in parts below that size (one event at least each), all but the last
// marked Fragment; clientv3 joins them.
func (st *watchStream) sendFragments(resp *etcdserverpb.WatchResponse) error {
	if len(resp.Events) < 2 || proto.Size(resp) < maxRequestBytes {
		return st.send(resp)
	}
	events := resp.Events
	resp.Events, resp.Fragment = nil, true
	base := proto.Size(resp)
	for len(events) > 0 {
		n, size := 0, base
		for ; n < len(events); n++ {
			size += watchEventTagSize + protowire.SizeBytes(proto.Size(events[n]))
			if n > 0 && size >= maxRequestBytes {
				break
			}
		}
		resp.Events, resp.Fragment = events[:n], n < len(events)
		if err := st.send(resp); err != nil {
			return err
		}
		events = events[n:]
	}
	return nil
}

func (st *watchStream) remove(id int64) *activeWatcher {
	st.mu.Lock()
	defer st.mu.Unlock()
	aw := st.watchers[id]
	delete(st.watchers, id)
	return aw
}

func (st *watchStream) cancel(id int64) error {
	aw := st.remove(id)
	if aw == nil {
		return nil
	}
	aw.cancel()
	return st.send(&etcdserverpb.WatchResponse{Header: st.header(st.s.fsm.hub.Revision()), WatchId: id, Canceled: true})
}

// progress answers a progress request, as etcd does, with one response for
// the whole stream (watch ID -1) whose revision every watcher has reached.
func (st *watchStream) progress() error {
	rev := st.s.fsm.hub.Revision()
	st.mu.Lock()
	for _, aw := range st.watchers {
		if d := aw.w.Delivered(); d < rev {
			rev = d
		}
	}
	st.mu.Unlock()
	return st.send(&etcdserverpb.WatchResponse{Header: st.header(rev), WatchId: -1})
}
