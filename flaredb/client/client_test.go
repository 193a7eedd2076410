package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	flaredbv1 "github.com/centra-cloud/centra/gen/centra/flaredb/v1"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPutGetDelete(t *testing.T) {
	fc := newFakeCluster(t, 3, "g", "p")
	c := fc.client()
	ctx := ctxT(t)
	for _, k := range []string{"a", "h", "z"} {
		if err := c.Put(ctx, "", []byte(k), []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
		v, found, err := c.Get(ctx, "default", []byte(k))
		if err != nil || !found || string(v) != "v-"+k {
			t.Fatalf("Get(%s) = %q, %v, %v", k, v, found, err)
		}
	}
	if _, found, err := c.Get(ctx, "", []byte("missing")); err != nil || found {
		t.Fatalf("Get(missing): found=%v err=%v", found, err)
	}
	if err := c.Delete(ctx, "", []byte("h")); err != nil {
		t.Fatal(err)
	}
	if _, ok := fc.value("default", "h"); ok {
		t.Fatal("h still stored after Delete")
	}
	// Namespaces are separate key spaces.
	if _, found, _ := c.Get(ctx, "other", []byte("a")); found {
		t.Fatal("key of namespace default found in namespace other")
	}
	// Writes went to the leader (store 1) only, and PD was asked once per
	// region.
	if n := len(fc.callsTo(2, "")) + len(fc.callsTo(3, "")); n != 0 {
		t.Fatalf("%d calls to followers", n)
	}
	if n := len(fc.callsTo(0, "PD.GetRegion")); n > 4 {
		t.Fatalf("%d PD lookups, want at most one per region (+1 for namespace other)", n)
	}
}

func TestNotLeaderHop(t *testing.T) {
	fc := newFakeCluster(t, 3)
	c := fc.client()
	ctx := ctxT(t)
	fc.setLeader(fc.regionOf("default", "k"), 2) // PD still says store 1
	for i := range 3 {
		if err := c.Put(ctx, "", []byte("k"), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(fc.callsTo(1, "Put")); n != 1 {
		t.Fatalf("%d puts to the old leader, want 1 (then follow the hint)", n)
	}
	if n := len(fc.callsTo(2, "Put")); n != 3 {
		t.Fatalf("%d puts to the new leader, want 3", n)
	}
	if v, _ := fc.value("default", "k"); v != "2" {
		t.Fatalf("value %q", v)
	}
}

func TestNoLeaderUntilElection(t *testing.T) {
	fc := newFakeCluster(t, 3)
	c := fc.client()
	id := fc.regionOf("default", "k")
	fc.setLeader(id, 0)
	var n atomic.Int32
	fc.setHook(func(store uint64, method string, _ *flaredbv1.Context) (*flaredbv1.RegionError, error) {
		if n.Add(1) == 5 {
			fc.setLeader(id, 3)
		}
		return nil, nil
	})
	if err := c.Put(ctxT(t), "", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, _ := fc.value("default", "k"); v != "v" {
		t.Fatalf("value %q", v)
	}
}

func TestGivesUpAtDeadlineNamingTheKey(t *testing.T) {
	fc := newFakeCluster(t, 3)
	c := fc.client()
	fc.setLeader(fc.regionOf("default", "k"), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	err := c.Put(ctx, "ns1", []byte("k"), []byte("v"))
	var oe *OpError
	if !errors.As(err, &oe) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want an OpError with the deadline", err)
	}
	for _, want := range []string{"put", `namespace "ns1"`, `key "k"`, "not leader", "region"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestRetryBudgetWithoutDeadline(t *testing.T) {
	fc := newFakeCluster(t, 1)
	c := fc.client(WithRetryTimeout(100 * time.Millisecond))
	fc.setLeader(fc.regionOf("default", "k"), 0)
	start := time.Now()
	err := c.Put(context.Background(), "", []byte("k"), []byte("v"))
	if err == nil || !strings.Contains(err.Error(), "gave up") || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestEpochNotMatchAfterSplit(t *testing.T) {
	fc := newFakeCluster(t, 3)
	c := fc.client()
	ctx := ctxT(t)
	if err := c.Put(ctx, "", []byte("a"), []byte("1")); err != nil { // caches the only region
		t.Fatal(err)
	}
	fc.split("k") // PD does not know yet
	lookups := len(fc.callsTo(0, "PD.GetRegion"))
	for _, k := range []string{"m", "b", "z"} {
		if err := c.Put(ctx, "", []byte(k), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(fc.callsTo(0, "PD.GetRegion")); n != lookups {
		t.Fatalf("%d PD lookups after the split; the store's current regions should have been enough", n-lookups)
	}
	if got := c.regions.len(); got != 2 {
		t.Fatalf("cache holds %d regions, want 2", got)
	}
	if v, _ := fc.value("default", "m"); v != "v" {
		t.Fatal("m not written")
	}
}

func TestServerBusyWaits(t *testing.T) {
	fc := newFakeCluster(t, 1)
	c := fc.client()
	var once atomic.Bool
	fc.setHook(func(uint64, string, *flaredbv1.Context) (*flaredbv1.RegionError, error) {
		if once.CompareAndSwap(false, true) {
			return &flaredbv1.RegionError{ServerBusy: &flaredbv1.ServerBusy{Reason: "compaction", BackoffMs: 60}}, nil
		}
		return nil, nil
	})
	start := time.Now()
	if err := c.Put(ctxT(t), "", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Fatalf("retried after %v, before the 60 ms the store asked for", d)
	}
}

func TestNonRetryableErrorReturnsAtOnce(t *testing.T) {
	fc := newFakeCluster(t, 3)
	c := fc.client()
	fc.setHook(func(uint64, string, *flaredbv1.Context) (*flaredbv1.RegionError, error) {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("value too large"))
	})
	err := c.Put(ctxT(t), "", []byte("k"), []byte("v"))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "value too large") {
		t.Fatalf("err = %v", err)
	}
	if n := len(fc.callsTo(0, "Put")); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

func TestUnreachableLeaderTriesOtherPeers(t *testing.T) {
	fc := newFakeCluster(t, 3, "m")
	c := fc.client()
	ctx := ctxT(t)
	if err := c.Put(ctx, "", []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	// Store 1 dies; store 2 wins the election; PD has not heard yet.
	fc.stores[1].Close()
	for _, k := range []string{"a", "z"} {
		fc.setLeader(fc.regionOf("default", k), 2)
	}
	for _, k := range []string{"a", "z"} {
		if err := c.Put(ctx, "", []byte(k), []byte("2")); err != nil {
			t.Fatal(err)
		}
		if v, _ := fc.value("default", k); v != "2" {
			t.Fatalf("%s = %q", k, v)
		}
	}
}

func TestUnavailableRetriesPutButNotCAS(t *testing.T) {
	fc := newFakeCluster(t, 3)
	c := fc.client()
	var fail atomic.Bool
	fc.setHook(func(store uint64, _ string, _ *flaredbv1.Context) (*flaredbv1.RegionError, error) {
		if store == 1 && fail.CompareAndSwap(true, false) {
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("connection reset"))
		}
		return nil, nil
	})
	ctx := ctxT(t)
	fail.Store(true)
	if err := c.Put(ctx, "", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	_, _, _, err := c.CompareAndSwap(ctx, "", []byte("k"), []byte("v"), false, []byte("w"))
	if !errors.Is(err, ErrIndeterminate) {
		t.Fatalf("CAS after a broken connection: %v, want ErrIndeterminate", err)
	}
}

func TestCompareAndSwap(t *testing.T) {
	fc := newFakeCluster(t, 3, "m")
	c := fc.client()
	ctx := ctxT(t)
	ok, prev, existed, err := c.CompareAndSwap(ctx, "", []byte("k"), nil, true, []byte("v1"))
	if err != nil || !ok || existed || prev != nil {
		t.Fatalf("create: %v %q %v %v", ok, prev, existed, err)
	}
	ok, prev, existed, err = c.CompareAndSwap(ctx, "", []byte("k"), []byte("nope"), false, []byte("v2"))
	if err != nil || ok || !existed || string(prev) != "v1" {
		t.Fatalf("mismatch: %v %q %v %v", ok, prev, existed, err)
	}
	ok, _, _, err = c.CompareAndSwap(ctx, "", []byte("k"), []byte("v1"), false, []byte("v2"))
	if err != nil || !ok {
		t.Fatalf("swap: %v %v", ok, err)
	}
	ok, _, _, err = c.CompareAndDelete(ctx, "", []byte("k"), []byte("v2"))
	if _, stored := fc.value("default", "k"); err != nil || !ok || stored {
		t.Fatalf("delete: %v %v stored=%v", ok, err, stored)
	}
}

func TestLocalStoreReads(t *testing.T) {
	fc := newFakeCluster(t, 3)
	fc.mu.Lock()
	fc.eventual["ev"] = true
	fc.mu.Unlock()
	fc.put("ev", "k", "e")
	fc.put("default", "k", "s")
	c := fc.client(WithLocalStore(fc.addr(3)))
	ctx := ctxT(t)
	for range 3 {
		if v, _, err := c.Get(ctx, "ev", []byte("k")); err != nil || string(v) != "e" {
			t.Fatalf("eventual Get = %q, %v", v, err)
		}
		if v, _, err := c.Get(ctx, "", []byte("k")); err != nil || string(v) != "s" {
			t.Fatalf("strong Get = %q, %v", v, err)
		}
	}
	evOn3, strongOn3 := 0, 0
	for _, call := range fc.callsTo(3, "Get") {
		if call.ns == "ev" {
			evOn3++
		} else {
			strongOn3++
		}
	}
	if evOn3 != 3 {
		t.Errorf("%d eventual reads served by the local store, want 3", evOn3)
	}
	if strongOn3 != 1 {
		t.Errorf("%d strong reads sent to the local follower, want 1 (then remember the namespace is strong)", strongOn3)
	}
	// Writes still go to the leader.
	if err := c.Put(ctx, "ev", []byte("k"), []byte("e2")); err != nil || len(fc.callsTo(3, "Put")) != 0 {
		t.Fatalf("Put: %v, %d puts to the local follower", err, len(fc.callsTo(3, "Put")))
	}
}

func TestBatchesAcrossRegionsAndSplits(t *testing.T) {
	fc := newFakeCluster(t, 3, "g", "p")
	c := fc.client()
	ctx := ctxT(t)
	var pairs []KvPair
	for ch := 'a'; ch <= 'z'; ch++ {
		pairs = append(pairs, KvPair{Key: []byte{byte(ch)}, Value: []byte{byte(ch), byte(ch)}})
	}
	if err := c.BatchPut(ctx, "", pairs); err != nil {
		t.Fatal(err)
	}
	if n := len(fc.callsTo(0, "BatchPut")); n != 3 {
		t.Fatalf("%d BatchPut calls, want one per region", n)
	}
	fc.split("c")
	fc.split("t")
	got, err := c.BatchGet(ctx, "", [][]byte{[]byte("z"), []byte("nope"), []byte("a"), []byte("d"), []byte("q")})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, p := range got {
		s = append(s, string(p.Key)+"="+string(p.Value))
	}
	if strings.Join(s, ",") != "z=zz,a=aa,d=dd,q=qq" {
		t.Fatalf("BatchGet = %v", s)
	}
}

func TestDeleteRangeAcrossRegions(t *testing.T) {
	fc := newFakeCluster(t, 3, "g", "p")
	c := fc.client()
	for ch := 'a'; ch <= 'z'; ch++ {
		fc.put("default", string(ch), "v")
	}
	fc.put("other", "h", "v")
	ctx := ctxT(t)
	if err := c.DeleteRange(ctx, "", []byte("c"), []byte("r")); err != nil {
		t.Fatal(err)
	}
	rest, err := c.Scan(ctx, "", nil, nil, ScanOptions{KeyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(rest); got != "abrstuvwxyz" {
		t.Fatalf("left %q", got)
	}
	if err := c.DeleteRange(ctx, "", []byte("s"), nil); err != nil {
		t.Fatal(err)
	}
	rest, _ = c.Scan(ctx, "", nil, nil, ScanOptions{})
	if got := keysOf(rest); got != "abr" {
		t.Fatalf("left %q", got)
	}
	if _, ok := fc.value("other", "h"); !ok {
		t.Fatal("DeleteRange crossed into another namespace")
	}
}

func TestClosed(t *testing.T) {
	fc := newFakeCluster(t, 1)
	c := fc.client()
	_ = c.Close()
	if err := c.Put(ctxT(t), "", []byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

func TestBadNamespace(t *testing.T) {
	fc := newFakeCluster(t, 1)
	c := fc.client()
	_, _, err := c.Get(ctxT(t), "\xff", []byte("k"))
	if err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("err = %v", err)
	}
}

func TestWaitsForTheFirstRegion(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.mu.Lock()
	fc.pdRegion = map[uint64]*metav1.Region{} // PD has not bootstrapped yet
	fc.mu.Unlock()
	c := fc.client()
	timer := time.AfterFunc(30*time.Millisecond, fc.syncPD)
	defer timer.Stop()
	if err := c.Put(ctxT(t), "", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
}

func TestLocalStoreByHostName(t *testing.T) {
	fc := newFakeCluster(t, 3)
	fc.mu.Lock()
	fc.eventual["ev"] = true
	fc.mu.Unlock()
	_, port, _ := strings.Cut(fc.addr(2), ":")
	c := fc.client(WithLocalStore("localhost:" + port))
	if _, _, err := c.Get(ctxT(t), "ev", []byte("k")); err != nil {
		t.Fatal(err)
	}
	if len(fc.callsTo(2, "Get")) != 1 {
		t.Fatalf("the read did not go to store 2 (localhost:%s)", port)
	}
}

func TestLocalReplicaMissingFallsBackToLeader(t *testing.T) {
	fc := newFakeCluster(t, 3)
	fc.mu.Lock()
	fc.eventual["ev"] = true
	fc.mu.Unlock()
	fc.setHook(func(store uint64, _ string, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error) {
		if store == 3 {
			return &flaredbv1.RegionError{RegionNotFound: &flaredbv1.RegionNotFound{RegionId: rctx.GetRegionId()}}, nil
		}
		return nil, nil
	})
	c := fc.client(WithLocalStoreID(3))
	fc.put("ev", "k", "v")
	if v, _, err := c.Get(ctxT(t), "ev", []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if len(fc.callsTo(1, "Get")) != 1 {
		t.Fatal("the read did not fall back to the leader")
	}
}

func TestNotLeaderNamingAnUnknownPeerReloads(t *testing.T) {
	fc := newFakeCluster(t, 3)
	c := fc.client()
	ctx := ctxT(t)
	if err := c.Put(ctx, "", []byte("k"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	// The region moved from store 3 to a new peer on store 2... as PD and
	// the stores now say; the client's cached peer list is old.
	id := fc.regionOf("default", "k")
	fc.mu.Lock()
	r := proto.Clone(fc.regions[id]).(*metav1.Region)
	r.Peers[1].Id = 999
	r.RegionEpoch.ConfVer++
	fc.regions[id] = r
	fc.leaders[id] = 2
	fc.mu.Unlock()
	fc.syncPD()
	lookups := len(fc.callsTo(0, "PD.GetRegion"))
	if err := c.Put(ctx, "", []byte("k"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if len(fc.callsTo(0, "PD.GetRegion")) == lookups {
		t.Fatal("the region was not reloaded from PD")
	}
}

func TestConcurrentUse(t *testing.T) {
	fc := newFakeCluster(t, 3, "g", "p")
	fc.mu.Lock()
	fc.eventual["ev"] = true
	fc.mu.Unlock()
	c := fc.client(WithLocalStore(fc.addr(2)))
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				k := []byte{byte('a' + (g*7+i)%26)}
				ns := []string{"", "ev"}[i%2]
				if err := c.Put(ctx, ns, k, k); err != nil {
					errs <- err
					return
				}
				if _, _, err := c.Get(ctx, ns, k); err != nil {
					errs <- err
					return
				}
				if _, err := c.Scan(ctx, ns, nil, nil, ScanOptions{Limit: 5, Reverse: i%3 == 0}); err != nil {
					errs <- err
					return
				}
				if g == 0 && i == 10 {
					fc.split("k")
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestBatchGetSplitsBigGroups(t *testing.T) {
	fc := newFakeCluster(t, 1)
	c := fc.client()
	ks := make([][]byte, MaxBatchGetKeys+1)
	for i := range ks {
		ks[i] = fmt.Appendf(nil, "k%06d", i)
	}
	fc.put("default", "k000007", "v")
	got, err := c.BatchGet(ctxT(t), "", ks)
	if err != nil || len(got) != 1 || string(got[0].Key) != "k000007" {
		t.Fatalf("BatchGet = %v, %v", got, err)
	}
	if n := len(fc.callsTo(0, "BatchGet")); n != 2 {
		t.Fatalf("%d BatchGet calls, want 2", n)
	}
}
