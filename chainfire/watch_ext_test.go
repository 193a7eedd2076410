package chainfire_test

import (
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/mvccpb"
)

func TestWatchHistoryFiltersProgressAndCompaction(t *testing.T) {
	n := startNode(t)
	n.put(t, "w/a", "1", 0) // 2
	n.put(t, "x", "no", 0)  // 3
	n.put(t, "w/b", "2", 0) // 4
	if _, err := n.kv.DeleteRange(testCtx(t, 5*time.Second), connect.NewRequest(&etcdserverpb.DeleteRangeRequest{Key: []byte("w/a")})); err != nil {
		t.Fatal(err) // 5
	}
	ctx := testCtx(t, 20*time.Second)
	stream := n.watch.Watch(ctx)
	send := func(r *etcdserverpb.WatchRequest) {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() *etcdserverpb.WatchResponse {
		r, err := stream.Receive()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	send(&etcdserverpb.WatchRequest{RequestUnion: &etcdserverpb.WatchRequest_CreateRequest{CreateRequest: &etcdserverpb.WatchCreateRequest{
		Key: []byte("w/"), RangeEnd: []byte("w0"), StartRevision: 1, PrevKv: true,
	}}})
	if r := recv(); !r.Created || r.WatchId != 0 {
		t.Fatalf("created: %v", r)
	}
	var got []string
	for len(got) < 3 {
		for _, ev := range recv().Events {
			prev := ""
			if ev.PrevKv != nil {
				prev = string(ev.PrevKv.Value)
			}
			got = append(got, ev.Type.String()+" "+string(ev.Kv.Key)+" "+string(ev.Kv.Value)+" prev="+prev)
		}
	}
	want := []string{"PUT w/a 1 prev=", "PUT w/b 2 prev=", "DELETE w/a  prev=1"}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("history: %q, want %q", got, want)
	}
	// A second watcher on the same stream, puts only.
	send(&etcdserverpb.WatchRequest{RequestUnion: &etcdserverpb.WatchRequest_CreateRequest{CreateRequest: &etcdserverpb.WatchCreateRequest{
		Key: []byte("w/"), RangeEnd: []byte("w0"), Filters: []etcdserverpb.WatchCreateRequest_FilterType{etcdserverpb.WatchCreateRequest_NODELETE},
	}}})
	if r := recv(); !r.Created || r.WatchId != 1 {
		t.Fatalf("second created: %v", r)
	}
	n.put(t, "w/c", "3", 0) // 6
	seen := map[int64]int64{}
	for len(seen) < 2 {
		r := recv()
		for _, ev := range r.Events {
			if ev.Type != mvccpb.Event_PUT || string(ev.Kv.Key) != "w/c" {
				t.Fatalf("watch %d got %v", r.WatchId, ev)
			}
			seen[r.WatchId] = ev.Kv.ModRevision
		}
	}
	if seen[0] != 6 || seen[1] != 6 {
		t.Fatalf("live events: %v", seen)
	}
	send(&etcdserverpb.WatchRequest{RequestUnion: &etcdserverpb.WatchRequest_ProgressRequest{ProgressRequest: &etcdserverpb.WatchProgressRequest{}}})
	if r := recv(); r.WatchId != -1 || r.Header.Revision != 6 {
		t.Fatalf("progress: %v", r)
	}
	send(&etcdserverpb.WatchRequest{RequestUnion: &etcdserverpb.WatchRequest_CancelRequest{CancelRequest: &etcdserverpb.WatchCancelRequest{WatchId: 1}}})
	if r := recv(); !r.Canceled || r.WatchId != 1 {
		t.Fatalf("cancel: %v", r)
	}
	// Watching from a compacted revision is refused with the compact revision.
	if _, err := n.kv.Compact(ctx, connect.NewRequest(&etcdserverpb.CompactionRequest{Revision: 5})); err != nil {
		t.Fatal(err)
	}
	send(&etcdserverpb.WatchRequest{RequestUnion: &etcdserverpb.WatchRequest_CreateRequest{CreateRequest: &etcdserverpb.WatchCreateRequest{Key: []byte("w/a"), StartRevision: 3}}})
	if r := recv(); !r.Created {
		t.Fatalf("created: %v", r)
	}
	if r := recv(); !r.Canceled || r.CompactRevision != 5 {
		t.Fatalf("compacted watch: %v", r)
	}
}

// Puts that do not ask for the previous version take create revision,
// version and lease from the in-memory index and publish events without the
// replaced version; a watcher that wants it (prev_kv) still gets it, for
// history published before it started and live.
func TestPutWithoutPrevKVKeepsVersionsAndWatchPrev(t *testing.T) {
	n := startNode(t)
	ctx := testCtx(t, 20*time.Second)
	put := func(k, v string) {
		t.Helper()
		r, err := n.kv.Put(ctx, connect.NewRequest(&etcdserverpb.PutRequest{Key: []byte(k), Value: []byte(v)}))
		if err != nil || r.Msg.PrevKv != nil {
			t.Fatalf("put %s: %v, %v", k, r, err)
		}
	}
	put("p", "1") // 2
	put("p", "2") // 3
	if _, err := n.kv.DeleteRange(ctx, connect.NewRequest(&etcdserverpb.DeleteRangeRequest{Key: []byte("p")})); err != nil {
		t.Fatal(err) // 4
	}
	put("p", "3") // 5
	put("p", "4") // 6
	r, err := n.get(t, &etcdserverpb.RangeRequest{Key: []byte("p")})
	if err != nil || kvString(r.Kvs) != "p=4@5/6/v2 " {
		t.Fatalf("range p = %q, %v; want p=4@5/6/v2", kvString(r.Kvs), err)
	}
	stream := n.watch.Watch(ctx)
	if err := stream.Send(&etcdserverpb.WatchRequest{RequestUnion: &etcdserverpb.WatchRequest_CreateRequest{CreateRequest: &etcdserverpb.WatchCreateRequest{
		Key: []byte("p"), StartRevision: 1, PrevKv: true,
	}}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 6 {
		resp, err := stream.Receive()
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Events {
			prev := ""
			if ev.PrevKv != nil {
				prev = fmt.Sprintf("%s@%d/v%d", ev.PrevKv.Value, ev.PrevKv.ModRevision, ev.PrevKv.Version)
			}
			got = append(got, fmt.Sprintf("%s %s prev=%s", ev.Type, ev.Kv.Value, prev))
		}
		if len(got) == 5 {
			put("p", "5") // 7, live, while a prev_kv watcher runs
		}
	}
	want := []string{"PUT 1 prev=", "PUT 2 prev=1@2/v1", "DELETE  prev=2@3/v2", "PUT 3 prev=", "PUT 4 prev=3@5/v1", "PUT 5 prev=4@6/v2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
}
