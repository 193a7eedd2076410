package client

import (
	"bytes"
	"context"
	"slices"
	"sync"

	flaredbv1 "github.com/centra-cloud/centra/gen/centra/flaredb/v1"
	"github.com/centra-cloud/centra/gen/centra/flaredb/v1/flaredbv1connect"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

// target is where one attempt is sent: a peer of a region and its store.
type target struct {
	region  regionInfo
	peer    *metav1.Peer
	storeID uint64
	addr    string
	local   bool // the WithLocalStore replica, chosen for a read
	leader  bool // the peer the cache believes leads the region
}

// regionCall sends one request to one region and returns the region error
// of the answer, or the RPC error.
type regionCall func(ctx context.Context, kv flaredbv1connect.KVServiceClient, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error)

func rpcContext(ri regionInfo, ns string) *flaredbv1.Context {
	return &flaredbv1.Context{RegionId: ri.id(), RegionEpoch: ri.region.GetRegionEpoch(), Namespace: ns}
}

// locate returns the region holding the encoded key, from the cache or PD.
func (c *Client) locate(ctx context.Context, enc []byte) (regionInfo, error) {
	if ri, ok := c.regions.find(enc); ok {
		return ri, nil
	}
	pctx, cancel := c.pdContext(ctx)
	defer cancel()
	r, leader, err := c.pd.GetRegion(pctx, enc)
	if err != nil {
		return regionInfo{}, err
	}
	if r == nil {
		return regionInfo{}, ErrNoRegion
	}
	c.regions.insert(r, leader)
	if ri, ok := c.regions.find(enc); ok {
		return ri, nil
	}
	// PD answered with a region the cache holds a newer layout of, or
	// one not holding the key: let the store tell.
	return regionInfo{region: r, leader: leader}, nil
}

// locateBefore returns the region holding the keys just below the encoded
// key end; start (<= end) bounds the PD lookup on a miss.
func (c *Client) locateBefore(ctx context.Context, start, end []byte) (regionInfo, error) {
	if ri, ok := c.regions.findBefore(end); ok {
		return ri, nil
	}
	pctx, cancel := c.pdContext(ctx)
	defer cancel()
	rs, err := c.pd.ScanRegions(pctx, start, end, 0)
	if err != nil {
		return regionInfo{}, err
	}
	for _, rl := range rs {
		c.regions.insert(rl.GetRegion(), rl.GetLeader())
	}
	if ri, ok := c.regions.findBefore(end); ok {
		return ri, nil
	}
	for i := len(rs) - 1; i >= 0; i-- {
		if ri := (regionInfo{region: rs[i].GetRegion(), leader: rs[i].GetLeader()}); ri.holdsBefore(end) {
			return ri, nil
		}
	}
	return regionInfo{}, ErrNoRegion
}

// pickTarget chooses the peer an attempt goes to: for reads the local
// store's replica unless the namespace is strong there, else the leader,
// else (leader unknown or failed) a voter that has not failed this
// operation.
func (c *Client) pickTarget(ctx context.Context, ri regionInfo, ns string, read bool, r *retrier) (target, error) {
	var cands []*metav1.Peer
	var local uint64
	if read && !r.avoidLocal && !c.isStrong(ns) {
		if local = c.localStore(ctx); local != 0 && !r.failed[local] {
			if p := ri.peer(local); p != nil {
				cands = append(cands, p)
			}
		}
	}
	if l := ri.leader; l != nil && !r.failed[l.GetStoreId()] {
		cands = append(cands, l)
	}
	voters := func(skipFailed bool) {
		for _, p := range ri.region.GetPeers() {
			if p.GetRole() != metav1.PeerRole_PEER_ROLE_LEARNER && !(skipFailed && r.failed[p.GetStoreId()]) {
				cands = append(cands, p)
			}
		}
	}
	voters(true)
	if len(cands) == 0 {
		// Every peer failed this operation: start over with all of them.
		clear(r.failed)
		if ri.leader != nil {
			cands = append(cands, ri.leader)
		}
		voters(false)
	}
	var lastErr error = ErrNoPeer
	for _, p := range cands {
		addr, err := c.storeAddr(ctx, p.GetStoreId())
		if err != nil {
			lastErr = err
			continue
		}
		return target{
			region: ri, peer: p, storeID: p.GetStoreId(), addr: addr, local: local != 0 && p.GetStoreId() == local,
			leader: ri.leader != nil && ri.leader.GetId() == p.GetId(),
		}, nil
	}
	return target{}, lastErr
}

// attempt sends call once to the region holding enc and reports whether
// it succeeded, or what failed.
func (c *Client) attempt(ctx context.Context, r *retrier, ns string, enc []byte, read, idempotent bool, call regionCall) (failure, bool) {
	ri, err := c.locate(ctx, enc)
	if err != nil {
		return r.pdFailure(err), false
	}
	return c.attemptIn(ctx, r, ri, ns, read, idempotent, call)
}

// attemptIn sends call once to the region ri.
func (c *Client) attemptIn(ctx context.Context, r *retrier, ri regionInfo, ns string, read, idempotent bool, call regionCall) (failure, bool) {
	r.err.Region = ri.id()
	t, err := c.pickTarget(ctx, ri, ns, read, r)
	if err != nil {
		return r.pdFailure(err), false
	}
	r.err.Attempts++
	rerr, err := call(ctx, c.kv(t.addr), rpcContext(ri, ns))
	if err == nil && rerr == nil {
		return failure{}, true
	}
	return r.onFailure(t, ns, read, idempotent, rerr, err), false
}

// doKey runs call on the region holding the encoded key until it succeeds
// or the retrier gives up.
func (c *Client) doKey(ctx context.Context, r *retrier, ns string, enc []byte, read, idempotent bool, call regionCall) error {
	if c.isClosed() {
		return r.fail(ErrClosed)
	}
	for {
		f, ok := c.attempt(ctx, r, ns, enc, read, idempotent, call)
		if ok {
			return nil
		}
		if err := r.retry(f); err != nil {
			return err
		}
	}
}

// groupCall sends the keys idx (indexes into the operation's keys, all in
// one region) to that region.
type groupCall func(idx []int) regionCall

// doGroups runs a multi-key operation: it groups the keys (encoded in enc)
// by region, at most maxKeys (0: any number) per group, sends each group's
// request concurrently, and regroups and retries the keys of the groups
// that failed.
func (c *Client) doGroups(ctx context.Context, r *retrier, ns string, enc [][]byte, read bool, maxKeys int, call groupCall) error {
	if c.isClosed() {
		return r.fail(ErrClosed)
	}
	pending := make([]int, len(enc))
	for i := range pending {
		pending[i] = i
	}
	slices.SortStableFunc(pending, func(a, b int) int { return bytes.Compare(enc[a], enc[b]) })
	for len(pending) > 0 {
		type group struct {
			ri  regionInfo
			idx []int
			t   target
		}
		var groups []*group
		var fs []failure
		var failed []int
		for n, i := range pending {
			if g := lastGroup(groups); g != nil && g.ri.contains(enc[i]) {
				if maxKeys > 0 && len(g.idx) >= maxKeys {
					groups = append(groups, &group{ri: g.ri})
					g = lastGroup(groups)
				}
				g.idx = append(g.idx, i)
				continue
			}
			ri, err := c.locate(ctx, enc[i])
			if err != nil {
				// PD failed: retry the rest in the next round.
				fs = append(fs, r.pdFailure(err))
				failed = append(failed, pending[n:]...)
				break
			}
			groups = append(groups, &group{ri: ri, idx: []int{i}})
		}
		var live []*group
		for _, g := range groups {
			t, err := c.pickTarget(ctx, g.ri, ns, read, r)
			if err != nil {
				fs = append(fs, r.pdFailure(err))
				failed = append(failed, g.idx...)
				continue
			}
			g.t = t
			live = append(live, g)
		}
		type result struct {
			rerr *flaredbv1.RegionError
			err  error
		}
		results := make([]result, len(live))
		var wg sync.WaitGroup
		for k, g := range live {
			r.err.Region = g.ri.id()
			r.err.Attempts++
			wg.Go(func() {
				rerr, err := call(g.idx)(ctx, c.kv(g.t.addr), rpcContext(g.ri, ns))
				results[k] = result{rerr, err}
			})
		}
		wg.Wait()
		succeeded := false
		for k, g := range live {
			res := results[k]
			if res.err == nil && res.rerr == nil {
				succeeded = true
				continue
			}
			fs = append(fs, r.onFailure(g.t, ns, read, true, res.rerr, res.err))
			failed = append(failed, g.idx...)
		}
		if len(fs) == 0 {
			return nil
		}
		if succeeded {
			r.progress()
		}
		if err := r.retry(merge(fs)); err != nil {
			return err
		}
		slices.SortStableFunc(failed, func(a, b int) int { return bytes.Compare(enc[a], enc[b]) })
		pending = failed
	}
	return nil
}

func lastGroup[T any](gs []*T) *T {
	if len(gs) == 0 {
		return nil
	}
	return gs[len(gs)-1]
}
