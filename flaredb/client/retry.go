package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"connectrpc.com/connect"

	flaredbv1 "github.com/centra-cloud/centra/gen/centra/flaredb/v1"
)

// maxImmediate is how many retries in a row may skip the wait (following a
// leader hint or a new region layout) before the client backs off anyway.
const maxImmediate = 3

// retrier is one operation's retry state: its backoff, the stores that
// failed it, and what its final error says.
type retrier struct {
	c   *Client
	ctx context.Context
	err OpError // the error template: op, namespace, key

	deadline   time.Time // the retry budget, when ctx has no deadline
	backoff    time.Duration
	immediate  int
	last       error
	failed     map[uint64]bool // stores that failed this operation
	avoidLocal bool            // the local replica could not serve it
}

func (c *Client) newRetrier(ctx context.Context, tmpl OpError) *retrier {
	r := &retrier{c: c, ctx: ctx, err: tmpl, backoff: c.minBackoff, failed: map[uint64]bool{}}
	if _, ok := ctx.Deadline(); !ok {
		r.deadline = time.Now().Add(c.budget)
	}
	return r
}

// failure is what the client learned from a failed attempt.
type failure struct {
	err       error
	fatal     bool          // no retry can help
	immediate bool          // retry at once (new leader or layout known)
	wait      time.Duration // wait at least this long (ServerBusy)
}

// merge combines the failures of several parts of one round.
func merge(fs []failure) failure {
	out := failure{immediate: true}
	for _, f := range fs {
		if f.fatal {
			return f
		}
		out.err = f.err
		out.immediate = out.immediate && f.immediate
		out.wait = max(out.wait, f.wait)
	}
	return out
}

// fail returns the operation's error for cause.
func (r *retrier) fail(cause error) error {
	e := r.err
	e.Err = cause
	if r.last != nil && !errors.Is(cause, r.last) {
		e.Last = r.last
	}
	return &e
}

// progress resets the backoff after a part of the operation succeeded.
func (r *retrier) progress() {
	r.backoff = r.c.minBackoff
	r.immediate = 0
	clear(r.failed)
	r.last = nil
}

// retry decides after a failed attempt: nil to try again (after waiting
// when needed), or the operation's final error.
func (r *retrier) retry(f failure) error {
	if f.fatal {
		return r.fail(f.err)
	}
	if err := r.ctx.Err(); err != nil {
		// An attempt cut short by the context says less than the one
		// before it.
		if r.last == nil || !causedBy(f.err, r.ctx) {
			r.last = f.err
		}
		return r.fail(err)
	}
	r.last = f.err
	if r.c.isClosed() {
		return r.fail(ErrClosed)
	}
	if f.immediate && f.wait == 0 && r.immediate < maxImmediate {
		r.immediate++
		return nil
	}
	r.immediate = 0
	wait := max(f.wait, r.backoff)
	r.backoff = min(2*r.backoff, r.c.maxBackoff)
	if !r.deadline.IsZero() {
		left := time.Until(r.deadline)
		if left <= 0 {
			return r.fail(fmt.Errorf("gave up after retrying for %v", r.c.budget))
		}
		wait = min(wait, left)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return r.fail(r.ctx.Err())
	case <-t.C:
		return nil
	}
}

// causedBy reports whether err is the context ending rather than news
// from the cluster.
func causedBy(err error, ctx context.Context) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	code := connect.CodeOf(err)
	return ctx.Err() != nil && (code == connect.CodeDeadlineExceeded || code == connect.CodeCanceled)
}

// pdFailure classifies an error of a PD lookup.
func (r *retrier) pdFailure(err error) failure {
	switch {
	case errors.Is(err, ErrNoRegion), errors.Is(err, ErrNoPeer):
		return failure{err: err}
	case r.ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// The PD client retries until its context ends; when the
		// operation's context is still live, that was the retry budget.
		return failure{err: fmt.Errorf("region lookup: %w", err)}
	case retryableCode(connect.CodeOf(err)):
		return failure{err: fmt.Errorf("region lookup: %w", err)}
	}
	return failure{err: fmt.Errorf("region lookup: %w", err), fatal: true}
}

// retryableCode reports whether an RPC error code means "try again,
// elsewhere or later" rather than "this request is wrong".
func retryableCode(code connect.Code) bool {
	switch code {
	case connect.CodeUnavailable, connect.CodeUnknown, connect.CodeAborted, connect.CodeCanceled, connect.CodeDeadlineExceeded:
		return true
	}
	return false
}

// notSent reports whether err says the request never reached the store
// (the connection could not be opened), so even a non-idempotent request
// can be retried.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dns)
}

// onFailure updates the caches after an attempt at t failed with a region
// error or an RPC error, and says how to go on. idempotent tells whether
// the request may be sent again when its outcome is unknown.
func (r *retrier) onFailure(t target, ns string, read, idempotent bool, rerr *flaredbv1.RegionError, err error) failure {
	c := r.c
	id := t.region.region.GetId()
	if err != nil {
		serr := &StoreError{StoreID: t.storeID, Address: t.addr, Err: err}
		if r.ctx.Err() != nil {
			return failure{err: serr}
		}
		if !retryableCode(connect.CodeOf(err)) {
			return failure{err: serr, fatal: true}
		}
		if !idempotent && !notSent(err) {
			return failure{err: fmt.Errorf("%w: %w", ErrIndeterminate, serr), fatal: true}
		}
		// Unreachable: forget the leader, reload the region from PD and try
		// another peer.
		r.failed[t.storeID] = true
		if t.local {
			r.avoidLocal = true
		}
		c.regions.remove(id)
		return failure{err: serr}
	}

	f := failure{err: &RegionError{RegionID: id, StoreID: t.storeID, Address: t.addr, Detail: rerr}}
	switch {
	case rerr.GetNotLeader() != nil:
		nl := rerr.GetNotLeader()
		if read && t.local && !t.leader {
			// A follower refuses reads of strong namespaces: read them
			// from the leader from now on.
			c.setStrong(ns)
		}
		leader := nl.GetLeader()
		if leader == nil || leader.GetStoreId() == 0 {
			// No leader known (an election): try the other peers, later.
			r.failed[t.storeID] = true
			c.regions.setLeader(id, nil)
			return f
		}
		c.setStoreAddr(leader.GetStoreId(), nl.GetLeaderAddress())
		if leader.GetStoreId() == t.storeID && !t.local {
			// The store names itself: it is stepping up or down.
			c.regions.setLeader(id, nil)
			r.failed[t.storeID] = true
			return f
		}
		if !c.regions.setLeader(id, leader) {
			c.regions.remove(id) // a member we do not know: reload
		}
		delete(r.failed, leader.GetStoreId())
		f.immediate = true
	case rerr.GetEpochNotMatch() != nil:
		inserted := false
		for _, cur := range rerr.GetEpochNotMatch().GetCurrentRegions() {
			if c.regions.insert(cur, nil) {
				inserted = true
			}
		}
		if !inserted {
			if t.local {
				r.avoidLocal = true // the local replica is behind
			} else {
				c.regions.remove(id)
			}
		}
		f.immediate = true
	case rerr.GetRegionNotFound() != nil:
		// The store has no replica (yet, or any more): reload the region
		// and ask another peer.
		c.regions.remove(id)
		if t.local {
			r.avoidLocal = true
		}
		r.failed[t.storeID] = true
		f.immediate = true
	case rerr.GetKeyNotInRegion() != nil:
		c.regions.remove(id)
		f.immediate = true
	case rerr.GetServerBusy() != nil:
		f.wait = time.Duration(rerr.GetServerBusy().GetBackoffMs()) * time.Millisecond
	default:
		c.regions.remove(id)
	}
	return f
}
