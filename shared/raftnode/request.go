package raftnode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/statemachine"
)

// request describes one retried dragonboat request.
type request struct {
	op      string // metric label
	what    string // for error messages, e.g. "proposal", "add replica 4"
	shardID uint64
	// write requests may commit after their caller stopped waiting; their
	// timeouts are reported as "outcome unknown".
	write bool
	// rejectHint explains a Rejected result.
	rejectHint string
	// attempt, when set, bounds each attempt; only for reads, whose
	// timed-out attempts are retried. A ReadIndex message lost between
	// replicas (e.g. while the transport reconnects) is never answered, so
	// without a bound one loss would cost the whole deadline.
	attempt time.Duration
	// start submits one attempt.
	start func(nh *dragonboat.NodeHost, timeout time.Duration) (*dragonboat.RequestState, error)
}

// notSubmitted reports dragonboat errors returned before the request was
// queued: retrying them cannot apply anything twice.
func notSubmitted(err error) bool {
	return errors.Is(err, dragonboat.ErrSystemBusy) || errors.Is(err, dragonboat.ErrShardNotReady)
}

// do runs r until it completes, retrying only outcomes that guarantee
// nothing was committed (see the retry table in DESIGN.md). On success the
// caller owns the returned RequestState and must Release it.
func (n *Node) do(ctx context.Context, r request) (*dragonboat.RequestState, dragonboat.RequestResult, error) {
	var none dragonboat.RequestResult
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil, none, fmt.Errorf("%w: %s on shard %d; use context.WithTimeout", ErrNoDeadline, r.what, r.shardID)
	}
	nh, err := n.host()
	if err != nil {
		return nil, none, err
	}
	w := &leaderWatch{nh: nh, shardID: r.shardID, limit: 2 * n.electionTimeout}
	pause := max(n.tick/4, time.Millisecond)
	for {
		if err := n.waitLeader(ctx, w, r); err != nil {
			return nil, none, err
		}
		timeout := time.Until(deadline)
		if r.attempt > 0 {
			timeout = min(timeout, r.attempt)
		}
		changed := n.shard(r.shardID).leaderChanged()
		rs, err := r.start(nh, timeout)
		switch {
		case err == nil:
			res, err := n.await(ctx, w, r, rs, changed)
			if err != nil {
				return nil, none, err
			}
			if res.Completed() {
				return rs, res, nil
			}
			rs.Release()
			if !res.Dropped() && (r.write || !res.Timeout()) {
				return nil, none, n.resultError(r, res)
			}
		case !notSubmitted(err):
			return nil, none, wrapDragonboatError(r.what, r.shardID, err)
		}
		n.metrics.retries.WithLabelValues(r.op).Inc()
		if err := n.backoff(ctx, r, &pause); err != nil {
			return nil, none, err
		}
	}
}

// leaderWatch tracks how long a shard has had no known leader during one
// call, across attempts.
type leaderWatch struct {
	nh      *dragonboat.NodeHost
	shardID uint64
	limit   time.Duration
	lostAt  time.Time
}

// poll reports whether a leader is known and, if not, for how long none has
// been.
func (w *leaderWatch) poll() (known bool, lostFor time.Duration, err error) {
	_, _, valid, err := w.nh.GetLeaderID(w.shardID)
	if err != nil {
		return false, 0, err
	}
	if valid {
		w.lostAt = time.Time{}
		return true, 0, nil
	}
	now := time.Now()
	if w.lostAt.IsZero() {
		w.lostAt = now
	}
	return false, now.Sub(w.lostAt), nil
}

// waitLeader returns once the shard has a known leader, or fails with
// ErrNoLeader after limit without one.
func (n *Node) waitLeader(ctx context.Context, w *leaderWatch, r request) error {
	var t *time.Ticker
	for {
		known, lostFor, err := w.poll()
		switch {
		case err != nil:
			return wrapDragonboatError(r.what, r.shardID, err)
		case known:
			return nil
		case lostFor >= w.limit:
			return fmt.Errorf("%w: shard %d has had no known leader for %v; the %s was not submitted (is a quorum of replicas running and reachable?)",
				ErrNoLeader, r.shardID, lostFor.Round(time.Millisecond), r.what)
		}
		if t == nil {
			t = time.NewTicker(n.tick)
			defer t.Stop()
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return notSubmittedCtxError(ctx, r)
		case <-n.stopc:
			return fmt.Errorf("%w: the %s on shard %d was not submitted", ErrClosed, r.what, r.shardID)
		}
	}
}

// await waits for rs's result, giving up when the context ends, when the
// shard loses its leader for longer than w.limit, or, for a write, when
// w.limit passed since the first leader event and graceAfterLeader since a
// leader was known again without the write applied.
// While the shard keeps its leader it only waits (no timer): polling starts
// when a leader event says the leader is gone, or (for a write) at the
// first leader event after the submission, changed.
func (n *Node) await(ctx context.Context, w *leaderWatch, r request, rs *dragonboat.RequestState, changed <-chan struct{}) (dragonboat.RequestResult, error) {
	var none dragonboat.RequestResult
	if !r.write {
		changed = nil // a read is bounded per attempt instead
	}
	select {
	case res := <-rs.ResultC():
		return res, nil
	case <-ctx.Done():
		return none, inFlightCtxError(ctx, r)
	case <-n.shard(r.shardID).leaderLost():
	case <-changed:
	}
	event := time.Now() // the first leader event since the submission
	t := time.NewTicker(n.tick)
	defer t.Stop()
	var regained time.Time // when a leader was known again
	for {
		select {
		case res := <-rs.ResultC():
			return res, nil
		case <-ctx.Done():
			return none, inFlightCtxError(ctx, r)
		case <-t.C:
		}
		// A shard stopped meanwhile terminates rs; that result arrives on
		// ResultC, so a poll error is not final here.
		known, lostFor, err := w.poll()
		switch {
		case err != nil:
		case known && r.write:
			// The leader changed since the submission. The new leader
			// either has the entry (it commits, and the result follows
			// as this replica applies it) or dropped it, which
			// dragonboat never reports: a deposed leader's proposal
			// would wait for its deadline. Give the apply w.limit from
			// the event, and at least graceAfterLeader(w.limit) after a
			// leader is known again, then call the outcome unknown.
			now := time.Now()
			if regained.IsZero() {
				regained = now
			}
			if now.Sub(event) >= w.limit && now.Sub(regained) >= graceAfterLeader(w.limit) {
				return none, fmt.Errorf("shard %d changed leader %v ago, and the %s in flight here was not applied %v after a leader was known; outcome unknown, it may still commit: %w",
					r.shardID, now.Sub(event).Round(time.Millisecond), r.what, now.Sub(regained).Round(time.Millisecond), ErrTimeout)
			}
		case known:
		case lostFor >= w.limit && r.write:
			return none, fmt.Errorf("%w: shard %d had no known leader for %v while the %s was in flight; outcome unknown, it may still commit: %w",
				ErrNoLeader, r.shardID, lostFor.Round(time.Millisecond), r.what, ErrTimeout)
		case lostFor >= w.limit:
			return none, fmt.Errorf("%w: shard %d had no known leader for %v; the %s was abandoned (is a quorum of replicas running and reachable?)",
				ErrNoLeader, r.shardID, lostFor.Round(time.Millisecond), r.what)
		default:
			regained = time.Time{}
		}
	}
}

// graceAfterLeader is how long a write in flight across a leader change
// waits for its apply after a leader is known again, at least: the new
// leader commits what it has at its first quorum round (its term's first
// entry) and this replica hears the commit index with the next append or
// heartbeat, a few ticks at most. Counting the whole limit from the regained
// leader instead let a write held by a cut-off leader, healed just before
// its no-leader limit, stall for the hold plus the limit (about 4E).
func graceAfterLeader(limit time.Duration) time.Duration { return limit / 4 }

// backoff waits *pause (doubling it up to half an election timeout) before
// the next attempt.
func (n *Node) backoff(ctx context.Context, r request, pause *time.Duration) error {
	t := time.NewTimer(*pause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return notSubmittedCtxError(ctx, r)
	case <-n.stopc:
		return fmt.Errorf("%w: the %s on shard %d was not submitted", ErrClosed, r.what, r.shardID)
	}
	*pause = min(2*(*pause), max(n.electionTimeout/2, time.Millisecond))
	return nil
}

// notSubmittedCtxError reports a context that ended before r was (again)
// submitted: nothing of r was committed.
func notSubmittedCtxError(ctx context.Context, r request) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: the %s on shard %d was not submitted before the deadline: %w", ErrTimeout, r.what, r.shardID, ctx.Err())
	}
	return fmt.Errorf("raftnode: the %s on shard %d was not submitted: %w", r.what, r.shardID, ctx.Err())
}

// inFlightCtxError reports a context that ended while r was in flight.
func inFlightCtxError(ctx context.Context, r request) error {
	unknown := ""
	if r.write {
		unknown = "; outcome unknown, it may still commit (make commands idempotent or check before retrying)"
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s on shard %d%s: %w", ErrTimeout, r.what, r.shardID, unknown, ctx.Err())
	}
	return fmt.Errorf("raftnode: %s on shard %d canceled%s: %w", r.what, r.shardID, unknown, ctx.Err())
}

// resultError maps a final, unsuccessful dragonboat result.
func (n *Node) resultError(r request, res dragonboat.RequestResult) error {
	unknown := ""
	if r.write {
		unknown = "; outcome unknown, it may still commit"
	}
	switch {
	case res.Timeout():
		return fmt.Errorf("%w: %s on shard %d timed out in raft%s", ErrTimeout, r.what, r.shardID, unknown)
	case res.Terminated() && n.closed.Load():
		return fmt.Errorf("%w: %s on shard %d was in flight%s", ErrClosed, r.what, r.shardID, unknown)
	case res.Terminated():
		return fmt.Errorf("raftnode: %s on shard %d: the replica stopped while it was in flight%s: %w", r.what, r.shardID, unknown, dragonboat.ErrShardClosed)
	case res.Rejected():
		return fmt.Errorf("%w: %s on shard %d (%s)", ErrRejected, r.what, r.shardID, r.rejectHint)
	default:
		return fmt.Errorf("raftnode: %s on shard %d: %w", r.what, r.shardID, dragonboat.ErrAborted)
	}
}

// wrapDragonboatError adds context and this package's sentinels to a
// dragonboat error; errors.Is still matches the dragonboat error.
func wrapDragonboatError(what string, shardID uint64, err error) error {
	switch {
	case errors.Is(err, dragonboat.ErrClosed):
		return fmt.Errorf("%w: %s on shard %d: %w", ErrClosed, what, shardID, err)
	case errors.Is(err, dragonboat.ErrShardNotFound):
		return fmt.Errorf("%w: shard %d (%s); start it with StartShard first", ErrShardNotFound, shardID, what)
	case errors.Is(err, dragonboat.ErrShardNotInitialized):
		return fmt.Errorf("raftnode: %s on shard %d: the replica is still loading its state, retry shortly: %w", what, shardID, err)
	case errors.Is(err, dragonboat.ErrTimeoutTooSmall):
		return fmt.Errorf("%w: %s on shard %d was not submitted: less than one raft tick left before the deadline: %w", ErrTimeout, what, shardID, err)
	case errors.Is(err, dragonboat.ErrPayloadTooBig):
		return fmt.Errorf("raftnode: %s on shard %d: %w; split the command or raise MaxInMemLogSize", what, shardID, err)
	default:
		return fmt.Errorf("raftnode: %s on shard %d: %w", what, shardID, err)
	}
}

// observe records the outcome of one public call.
func (n *Node) observe(op string, began time.Time, err error) {
	if err == nil {
		n.metrics.requestDuration.WithLabelValues(op).Observe(time.Since(began).Seconds())
		return
	}
	reason := "other"
	switch {
	case errors.Is(err, ErrNoLeader):
		reason = "no_leader"
	case errors.Is(err, ErrTimeout):
		reason = "timeout"
	case errors.Is(err, ErrClosed):
		reason = "closed"
	}
	n.metrics.failures.WithLabelValues(op, reason).Inc()
}

// Propose proposes cmd on shardID and waits until it is applied on this
// replica, returning the state machine's Result. ctx must have a deadline
// (ErrNoDeadline otherwise). Proposals are forwarded to the leader from any
// replica, including non-voting ones.
//
// Only outcomes that guarantee cmd was not committed are retried, with
// backoff (busy, dropped, not ready). When the shard has no known leader for
// about two election timeouts Propose fails with ErrNoLeader instead of
// waiting for the deadline. A context that ends while cmd is in flight gives
// ErrTimeout with "outcome unknown": cmd may still commit, so commands must
// be idempotent (no-op sessions give no exactly-once dedup).
func (n *Node) Propose(ctx context.Context, shardID uint64, cmd []byte) (res statemachine.Result, err error) {
	began := time.Now()
	defer func() { n.observe(opPropose, began, err) }()
	rs, out, err := n.do(ctx, request{
		op: opPropose, what: "proposal", shardID: shardID, write: true,
		rejectHint: "no-op session proposals are not expected to be rejected",
		start: func(nh *dragonboat.NodeHost, timeout time.Duration) (*dragonboat.RequestState, error) {
			return nh.Propose(nh.GetNoOPSession(shardID), cmd, timeout)
		},
	})
	if err != nil {
		return statemachine.Result{}, err
	}
	rs.Release()
	return out.GetResult(), nil
}

// Read is a linearizable read: a ReadIndex round trip, then the state
// machine's Lookup(query) on this replica. It works on followers and
// non-voting replicas. ctx must have a deadline; temporary errors are
// retried until it ends, and a shard without a known leader for about two
// election timeouts fails fast with ErrNoLeader. Lookup's own errors are
// returned wrapped.
func (n *Node) Read(ctx context.Context, shardID uint64, query any) (v any, err error) {
	began := time.Now()
	defer func() { n.observe(opRead, began, err) }()
	var nh *dragonboat.NodeHost
	rs, _, err := n.do(ctx, request{
		op: opRead, what: "read", shardID: shardID, attempt: 2 * n.electionTimeout,
		rejectHint: "read index requests are not expected to be rejected",
		start: func(h *dragonboat.NodeHost, timeout time.Duration) (*dragonboat.RequestState, error) {
			nh = h
			return h.ReadIndex(shardID, timeout)
		},
	})
	if err != nil {
		return nil, err
	}
	defer rs.Release()
	v, err = nh.ReadLocalNode(rs, query)
	if err != nil {
		return nil, wrapDragonboatError("read", shardID, err)
	}
	return v, nil
}

// StaleRead calls the local replica's Lookup(query) without a quorum round
// trip (serializable: it may miss recently committed writes). It does not
// block.
func (n *Node) StaleRead(shardID uint64, query any) (any, error) {
	nh, err := n.host()
	if err != nil {
		return nil, err
	}
	v, err := nh.StaleRead(shardID, query)
	if err != nil {
		return nil, wrapDragonboatError("stale read", shardID, err)
	}
	return v, nil
}
