package client

import (
	"bytes"
	"context"
	"fmt"
	"math"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/flaredb/internal/keys"
	flaredbv1 "github.com/centra-cloud/centra/gen/centra/flaredb/v1"
	"github.com/centra-cloud/centra/gen/centra/flaredb/v1/flaredbv1connect"
)

// ScanOptions shape a scan.
type ScanOptions struct {
	// Limit caps the pairs returned (0: no limit).
	Limit int
	// KeyOnly leaves the values empty.
	KeyOnly bool
	// Reverse returns the keys in descending order, from just below end
	// down to start.
	Reverse bool
}

// Scan returns the pairs of namespace ns with start <= key < end (an empty
// end means the end of the namespace) in key order, or in reverse order,
// across regions. For ranges too big to hold in memory, use ScanFunc.
func (c *Client) Scan(ctx context.Context, ns string, start, end []byte, opts ScanOptions) ([]KvPair, error) {
	var out []KvPair
	err := c.ScanFunc(ctx, ns, start, end, opts, func(p KvPair) bool {
		out = append(out, p)
		return true
	})
	return out, err
}

// ScanFunc calls fn with each pair of Scan's range in order until fn
// returns false, the range or the limit is exhausted, or an error stops
// it. Pairs stream from one region at a time, so the range need not fit
// in memory. When a region splits or a store fails during the scan, it
// resumes after the last pair passed to fn: no pair is passed twice and
// none is skipped. fn runs while a store's stream is open; a slow fn
// holds it open.
func (c *Client) ScanFunc(ctx context.Context, ns string, start, end []byte, opts ScanOptions, fn func(KvPair) bool) error {
	tmpl := OpError{Op: "scan", Namespace: ns, Key: start, End: end, Range: true}
	ns, err := keys.Namespace(ns)
	if err != nil {
		tmpl.Err = err
		return &tmpl
	}
	tmpl.Namespace = ns
	if opts.Limit < 0 {
		tmpl.Err = fmt.Errorf("negative limit %d", opts.Limit)
		return &tmpl
	}
	r := c.newRetrier(ctx, tmpl)
	if c.isClosed() {
		return r.fail(ErrClosed)
	}
	if len(end) > 0 && bytes.Compare(start, end) >= 0 {
		return nil
	}
	s := &scan{c: c, r: r, ns: ns, opts: opts, fn: fn}
	s.nsStart, s.nsEnd = keys.NamespaceRange(ns)
	encStart, encEnd := keys.Range(ns, start, end)
	if opts.Reverse {
		return s.backward(ctx, encStart, encEnd)
	}
	return s.forward(ctx, encStart, encEnd)
}

// scan is the state of one ScanFunc call.
type scan struct {
	c              *Client
	r              *retrier
	ns             string
	nsStart, nsEnd []byte
	opts           ScanOptions
	fn             func(KvPair) bool
	delivered      int
	stopped        bool
}

// raw turns an encoded bound of the namespace into a request key; an end
// at or past the namespace's end is the empty key.
func (s *scan) raw(enc []byte, isEnd bool) []byte {
	if isEnd && bytes.Compare(enc, s.nsEnd) >= 0 {
		return nil
	}
	return enc[len(s.nsStart):]
}

func (s *scan) done() bool {
	return s.stopped || s.opts.Limit > 0 && s.delivered >= s.opts.Limit
}

// forward scans [encStart, encEnd) region by region upwards.
func (s *scan) forward(ctx context.Context, encStart, encEnd []byte) error {
	cur := encStart
	for !s.done() && bytes.Compare(cur, encEnd) < 0 {
		ri, err := s.c.locate(ctx, cur)
		if err != nil {
			if err := s.r.retry(s.r.pdFailure(err)); err != nil {
				return err
			}
			continue
		}
		lo, hi, ok := keys.Clamp(cur, encEnd, ri.region.GetStartKey(), ri.region.GetEndKey())
		if !ok {
			// PD's answer does not hold the key (it lags the cache): reload.
			s.c.regions.remove(ri.id())
			if err := s.r.retry(failure{err: fmt.Errorf("region %d does not hold %s: %w", ri.id(), quoteKey(cur), ErrNoRegion)}); err != nil {
				return err
			}
			continue
		}
		f, ok := s.region(ctx, ri, lo, hi, func(key []byte) { cur = append(keys.Encode(s.ns, key), 0) })
		if !ok {
			if err := s.r.retry(f); err != nil {
				return err
			}
			continue
		}
		s.r.progress()
		end := ri.region.GetEndKey()
		if len(end) == 0 || bytes.Compare(end, encEnd) >= 0 {
			return nil
		}
		cur = end
	}
	return nil
}

// backward scans [encStart, encEnd) region by region downwards.
func (s *scan) backward(ctx context.Context, encStart, encEnd []byte) error {
	cur := encEnd
	for !s.done() && bytes.Compare(encStart, cur) < 0 {
		ri, err := s.c.locateBefore(ctx, encStart, cur)
		if err != nil {
			if err := s.r.retry(s.r.pdFailure(err)); err != nil {
				return err
			}
			continue
		}
		lo, hi, ok := keys.Clamp(encStart, cur, ri.region.GetStartKey(), ri.region.GetEndKey())
		if !ok {
			s.c.regions.remove(ri.id())
			if err := s.r.retry(failure{err: fmt.Errorf("region %d does not hold the keys below %s: %w", ri.id(), quoteKey(cur), ErrNoRegion)}); err != nil {
				return err
			}
			continue
		}
		f, ok := s.region(ctx, ri, lo, hi, func(key []byte) { cur = keys.Encode(s.ns, key) })
		if !ok {
			if err := s.r.retry(f); err != nil {
				return err
			}
			continue
		}
		s.r.progress()
		start := ri.region.GetStartKey()
		if bytes.Compare(start, encStart) <= 0 {
			return nil
		}
		cur = start
	}
	return nil
}

// region streams [lo, hi) (encoded, inside ri) from one replica, calling
// seen with each key passed to fn. ok is false when the attempt failed.
func (s *scan) region(ctx context.Context, ri regionInfo, lo, hi []byte, seen func(key []byte)) (failure, bool) {
	var limit uint32
	if s.opts.Limit > 0 {
		limit = uint32(min(s.opts.Limit-s.delivered, math.MaxUint32))
	}
	req := &flaredbv1.ScanRequest{
		StartKey: s.raw(lo, false), EndKey: s.raw(hi, true),
		Limit: limit, KeyOnly: s.opts.KeyOnly, Reverse: s.opts.Reverse,
	}
	return s.c.attemptIn(ctx, s.r, ri, s.ns, true, true, func(ctx context.Context, kv flaredbv1connect.KVServiceClient, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error) {
		req.Context = rctx
		ctx, cancel := context.WithCancel(ctx)
		stream, err := kv.Scan(ctx, connect.NewRequest(req))
		if err != nil {
			cancel()
			return nil, err
		}
		defer func() {
			cancel() // before Close, which would drain the rest
			_ = stream.Close()
		}()
		first := true
		for stream.Receive() {
			msg := stream.Msg()
			if first {
				first = false
				if rerr := msg.GetRegionError(); rerr != nil {
					return rerr, nil
				}
			}
			for _, p := range msg.GetPairs() {
				if s.done() {
					return nil, nil
				}
				seen(p.GetKey())
				s.delivered++
				if !s.fn(KvPair{Key: p.GetKey(), Value: p.GetValue()}) {
					s.stopped = true
					return nil, nil
				}
			}
			if s.done() {
				return nil, nil
			}
		}
		return nil, stream.Err()
	})
}

// DeleteRange removes the keys of namespace ns with start <= key < end (an
// empty end means the end of the namespace), one region at a time. It is
// atomic per region only: if it fails, some regions' parts may be gone.
func (c *Client) DeleteRange(ctx context.Context, ns string, start, end []byte) error {
	tmpl := OpError{Op: "delete-range", Namespace: ns, Key: start, End: end, Range: true}
	ns, err := keys.Namespace(ns)
	if err != nil {
		tmpl.Err = err
		return &tmpl
	}
	tmpl.Namespace = ns
	r := c.newRetrier(ctx, tmpl)
	if c.isClosed() {
		return r.fail(ErrClosed)
	}
	if len(end) > 0 && bytes.Compare(start, end) >= 0 {
		return nil
	}
	s := &scan{c: c, r: r, ns: ns}
	s.nsStart, s.nsEnd = keys.NamespaceRange(ns)
	cur, encEnd := keys.Range(ns, start, end)
	for bytes.Compare(cur, encEnd) < 0 {
		ri, err := c.locate(ctx, cur)
		if err != nil {
			if err := r.retry(r.pdFailure(err)); err != nil {
				return err
			}
			continue
		}
		lo, hi, ok := keys.Clamp(cur, encEnd, ri.region.GetStartKey(), ri.region.GetEndKey())
		if !ok {
			c.regions.remove(ri.id())
			if err := r.retry(failure{err: fmt.Errorf("region %d does not hold %s: %w", ri.id(), quoteKey(cur), ErrNoRegion)}); err != nil {
				return err
			}
			continue
		}
		f, ok := c.attemptIn(ctx, r, ri, ns, false, true, func(ctx context.Context, kv flaredbv1connect.KVServiceClient, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error) {
			return regionErr(kv.DeleteRange(ctx, connect.NewRequest(&flaredbv1.DeleteRangeRequest{
				Context: rctx, StartKey: s.raw(lo, false), EndKey: s.raw(hi, true),
			})))
		})
		if !ok {
			if err := r.retry(f); err != nil {
				return err
			}
			continue
		}
		r.progress()
		regionEnd := ri.region.GetEndKey()
		if len(regionEnd) == 0 || bytes.Compare(regionEnd, encEnd) >= 0 {
			return nil
		}
		cur = regionEnd
	}
	return nil
}
