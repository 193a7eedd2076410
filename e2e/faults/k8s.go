//go:build e2e && faults

package faults

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// objPrefix holds the objects of the Kubernetes-like traffic: under
// keyPrefix, so the watcher checks their events too.
const objPrefix = keyPrefix + "o/"

// k8sObjects are the keys the Kubernetes-like clients create and update.
var k8sObjects = func() []string {
	out := make([]string, 6)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", objPrefix, i)
	}
	return out
}()

// k8sWriters is how many Kubernetes-like clients create and update the
// objects (beside one informer and one lease revoker).
const k8sWriters = 2

// listPage is the informer's page size (kube-apiserver's ?limit=): six
// objects take three pages.
const listPage = 2

// relistEvery is how long the informer watches before it checks its cache
// against a list at the cache's revision and lists afresh.
const relistEvery = 2 * time.Second

// k8sChecker counts the Kubernetes-like and lease-revoke traffic's checks
// and records what violated them.
type k8sChecker struct {
	mu       sync.Mutex
	problems []string
	lists    int // paginated lists
	pages    int
	checks   int // caches (list + watch from its revision) compared with a list at the cache's revision
	revokes  int // acknowledged revokes whose key was read back gone
}

func (k *k8sChecker) problem(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.problems = append(k.problems, fmt.Sprintf(format, args...))
}

func (k *k8sChecker) count(n *int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	*n++
}

// objVersion is what a client last saw of an object: its value and its
// ModRevision.
type objVersion struct {
	value string
	rev   int64
}

// writer is a Kubernetes-like client (kube-apiserver's etcd3 store):
// create-if-absent by a txn on ModRevision 0, update by a txn on the
// ModRevision it last saw (GuaranteedUpdate), a get after a conflict
// answers with the current object (the txn's else branch). Values are
// unique, so "ModRevision = r" is "the value is the one written at r": the
// history records the txns as CAS on values, checked by the register
// model; client id's operations are recorded under that id.
func writer(ctx context.Context, cli *clientv3.Client, id int, seed uint64, h *history) {
	r := rand.New(rand.NewPCG(seed, uint64(id)))
	seen := map[string]objVersion{}
	for i := 0; ctx.Err() == nil; i++ {
		key := k8sObjects[r.IntN(len(k8sObjects))]
		if r.IntN(5) == 0 {
			call := h.now()
			get, err := do1(ctx, func(ctx context.Context) (*clientv3.GetResponse, error) { return cli.Get(ctx, key) })
			if err != nil {
				continue // an unknown get tells nothing
			}
			out := output{}
			delete(seen, key)
			if len(get.Kvs) > 0 {
				out.Value = string(get.Kvs[0].Value)
				seen[key] = objVersion{out.Value, get.Kvs[0].ModRevision}
			}
			h.add(id, input{Kind: opGet, Key: key}, call, out)
			continue
		}
		old := seen[key]
		in := input{Kind: opCAS, Key: key, Value: fmt.Sprintf("c%d-%d", id, i), Expect: old.value}
		call := h.now()
		txn, err := do1(ctx, func(ctx context.Context) (*clientv3.TxnResponse, error) {
			return cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", old.rev)).
				Then(clientv3.OpPut(key, in.Value)).Else(clientv3.OpGet(key)).Commit()
		})
		out := writeOutput(err, err == nil && txn.Succeeded)
		h.add(id, in, call, out)
		switch {
		case err != nil:
			delete(seen, key) // refetch: the update may or may not have landed
		case txn.Succeeded:
			seen[key] = objVersion{in.Value, txn.Header.Revision}
		default:
			delete(seen, key)
			if kvs := txn.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
				seen[key] = objVersion{string(kvs[0].Value), kvs[0].ModRevision}
			}
		}
	}
}

// informer lists the objects page by page and watches them from the
// list's revision (a Kubernetes reflector), until ctx ends. Checks:
//   - a list's first page is a linearizable read: the objects it shows and
//     those it shows absent (before its last key) go into the history as
//     gets under client id;
//   - the later pages, read at the first page's revision (the continue
//     token), are in key order without repeats, hold only changes up to
//     that revision, and add up to the first page's count;
//   - the cache (the list plus every watched event) at the revision of the
//     last event equals a list at that revision.
func (k *k8sChecker) informer(ctx context.Context, cli *clientv3.Client, id int, h *history) {
	for ctx.Err() == nil {
		cache, rev, err := k.list(ctx, cli, 0, id, h)
		if err != nil {
			pause(ctx)
			continue
		}
		cacheRev := k.watchFrom(ctx, cli, cache, rev)
		if cacheRev == rev {
			continue
		}
		// The check must not end with the traffic: it reads the past.
		cctx := context.WithoutCancel(ctx)
		at, _, err := k.list(cctx, cli, cacheRev, id, h)
		if err != nil {
			continue // unavailable, or compacted meanwhile: nothing to compare
		}
		k.count(&k.checks)
		if !maps.Equal(at, cache) {
			k.problem("the informer's cache (a list at revision %d and the watch from %d) at revision %d is %v, but a list at %d says %v",
				rev, rev+1, cacheRev, cache, cacheRev, at)
		}
	}
}

// watchFrom applies the objects' events from revision rev+1 to cache for
// relistEvery (the client resumes the watch itself after failures) and
// returns the revision the cache then reflects.
func (k *k8sChecker) watchFrom(ctx context.Context, cli *clientv3.Client, cache map[string]string, rev int64) int64 {
	wctx, cancel := context.WithTimeout(ctx, relistEvery)
	defer cancel()
	for resp := range cli.Watch(clientv3.WithRequireLeader(wctx), objPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if resp.Err() != nil {
			break
		}
		for _, ev := range resp.Events {
			if ev.Kv.ModRevision <= rev {
				k.problem("watch from revision %d delivered %s %s of revision %d, not after the last (%d)", rev+1, ev.Type, ev.Kv.Key, ev.Kv.ModRevision, rev)
				continue
			}
			if ev.Type == clientv3.EventTypeDelete {
				delete(cache, string(ev.Kv.Key))
			} else {
				cache[string(ev.Kv.Key)] = string(ev.Kv.Value)
			}
		}
		if n := len(resp.Events); n > 0 {
			rev = resp.Events[n-1].Kv.ModRevision
		}
	}
	return rev
}

// list reads every object page by page, at revision at (0: now; the first
// page then goes into the history), and returns them with the revision
// read.
func (k *k8sChecker) list(ctx context.Context, cli *clientv3.Client, at int64, id int, h *history) (map[string]string, int64, error) {
	end := clientv3.GetPrefixRangeEnd(objPrefix)
	out := map[string]string{}
	var count int64
	var last string
	for page := 0; ; page++ {
		from := objPrefix
		if page > 0 {
			from = last + "\x00"
		}
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}
		if at != 0 {
			opts = append(opts, clientv3.WithRev(at))
		}
		call := h.now()
		resp, err := do1(ctx, func(ctx context.Context) (*clientv3.GetResponse, error) { return cli.Get(ctx, from, opts...) })
		if err != nil {
			return nil, 0, err
		}
		k.count(&k.pages)
		if at == 0 {
			at, count = resp.Header.Revision, resp.Count
			k.record(resp, id, call, h)
		}
		for _, kv := range resp.Kvs {
			key := string(kv.Key)
			if key <= last {
				k.problem("list at revision %d: page %d returned %s after %s", at, page, key, last)
			}
			if kv.ModRevision > at {
				k.problem("list at revision %d: page %d returned %s modified at revision %d", at, page, key, kv.ModRevision)
			}
			out[key], last = string(kv.Value), key
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
	}
	if count != 0 && int64(len(out)) != count {
		k.problem("list at revision %d: the pages hold %d objects, the first page counted %d", at, len(out), count)
	}
	k.count(&k.lists)
	return out, at, nil
}

// record puts a first page into the history as gets: the objects on it
// and those absent before its last key (all absent ones if it is the only
// page).
func (k *k8sChecker) record(resp *clientv3.GetResponse, id int, call int64, h *history) {
	got := map[string]string{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	for _, key := range k8sObjects {
		if resp.More && len(resp.Kvs) > 0 && key > string(resp.Kvs[len(resp.Kvs)-1].Key) {
			continue
		}
		h.add(id, input{Kind: opGet, Key: key}, call, output{Value: got[key]})
	}
}

// revoker grants leases, puts a fresh key under each, keeps it alive once
// and revokes it, until ctx ends: a key read after its put was
// acknowledged must be there (the lease's TTL is far longer than the
// round), and after an acknowledged revoke a read must find the key gone
// and the lease unknown.
func (k *k8sChecker) revoker(ctx context.Context, cli *clientv3.Client) {
	const ttl = 60 // seconds; never expires within a round
	for n := 0; ctx.Err() == nil; n++ {
		pause(ctx)
		key := fmt.Sprintf("%sr/%d", keyPrefix, n)
		grant, err := do1(ctx, func(ctx context.Context) (*clientv3.LeaseGrantResponse, error) { return cli.Grant(ctx, ttl) })
		if err != nil {
			continue
		}
		if _, err := do1(ctx, func(ctx context.Context) (*clientv3.PutResponse, error) {
			return cli.Put(ctx, key, "v", clientv3.WithLease(grant.ID))
		}); err == nil {
			if get, err := do1(ctx, func(ctx context.Context) (*clientv3.GetResponse, error) { return cli.Get(ctx, key) }); err == nil && len(get.Kvs) == 0 {
				k.problem("key %s put under lease %x (TTL %d s) is gone before its revoke", key, grant.ID, ttl)
			}
		}
		if _, err := do1(ctx, func(ctx context.Context) (*clientv3.LeaseKeepAliveResponse, error) {
			return cli.KeepAliveOnce(ctx, grant.ID)
		}); isLeaseNotFound(err) {
			k.problem("a keepalive of lease %x (TTL %d s) found it gone before its revoke", grant.ID, ttl)
		}
		// The revoke must get through: a lease left behind would hold
		// its key for a minute. An unknown outcome is retried.
		var rerr error
		for ctx.Err() == nil {
			_, rerr = do1(ctx, func(ctx context.Context) (*clientv3.LeaseRevokeResponse, error) { return cli.Revoke(ctx, grant.ID) })
			if rerr == nil || isLeaseNotFound(rerr) {
				break
			}
		}
		if rerr != nil && !isLeaseNotFound(rerr) {
			return
		}
		if get, err := do1(ctx, func(ctx context.Context) (*clientv3.GetResponse, error) { return cli.Get(ctx, key) }); err == nil {
			k.count(&k.revokes)
			if len(get.Kvs) > 0 {
				k.problem("key %s of lease %x is there after the revoke was acknowledged", key, grant.ID)
			}
		}
		if l, err := do1(ctx, func(ctx context.Context) (*clientv3.LeaseTimeToLiveResponse, error) {
			return cli.TimeToLive(ctx, grant.ID)
		}); err == nil && l.TTL != -1 {
			k.problem("lease %x has TTL %d after its revoke was acknowledged", grant.ID, l.TTL)
		}
	}
}
