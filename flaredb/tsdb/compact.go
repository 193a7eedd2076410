package tsdb

import (
	"context"
	"time"

	"github.com/centra-cloud/centra/flaredb/client"
	"github.com/centra-cloud/centra/shared/loop"
)

// Maintain runs compaction and retention every interval while leader()
// is true, until ctx ends (DESIGN.md, "Compaction", "Retention").
func (db *DB) Maintain(ctx context.Context, interval time.Duration, leader func() bool) {
	var retainedTo int64 = minTime
	loop.Every(ctx, interval, func(time.Time) {
		if !leader() {
			return
		}
		if err := db.Compact(ctx); err != nil && ctx.Err() == nil {
			db.log.Warn("Compaction of raw samples failed; retrying at the next pass", "err", err)
		}
		cutoff := windowOf(db.cfg.Now().Add(-db.cfg.Retention).UnixMilli())
		if cutoff > retainedTo {
			if err := db.Retain(ctx, cutoff); err != nil {
				if ctx.Err() == nil {
					db.log.Warn("Retention failed; retrying at the next pass", "err", err)
				}
				return
			}
			retainedTo = cutoff
		}
	})
}

// Compact merges the raw samples of every window that can no longer
// receive raw writes into chunks, deletes them, and advances the
// watermark.
func (db *DB) Compact(ctx context.Context) error {
	now := db.cfg.Now()
	closed := windowOf(now.Add(-db.cfg.OutOfOrderWindow - db.safetyMargin()).UnixMilli())
	for s := range 256 {
		if err := db.compactSalt(ctx, byte(s), closed); err != nil {
			return err
		}
	}
	wm, err := db.watermark(ctx)
	if err != nil || wm >= closed {
		return err
	}
	if err := db.cfg.KV.Put(ctx, db.cfg.Namespace, watermarkKey(), encTime(nil, closed)); err != nil {
		return storageErr("advance the compaction watermark", err)
	}
	return nil
}

// compactSalt compacts the raw keys of salt s in windows before closed.
func (db *DB) compactSalt(ctx context.Context, s byte, closed int64) error {
	start, end := windowsRange(kindRaw, s, minTime, closed)
	groups := map[chunkRef][]sample{}
	n := 0
	err := db.cfg.KV.ScanFunc(ctx, db.cfg.Namespace, start, end, client.ScanOptions{}, func(p client.KvPair) bool {
		w, id, t, ok := parseRawKey(p.Key)
		if ok && len(p.Value) == 8 {
			ref := chunkRef{id, w}
			groups[ref] = append(groups[ref], sample{t, bytesFloat(p.Value)})
			n++
		}
		return true
	})
	if err != nil {
		return storageErr("scan raw samples", err)
	}
	if n == 0 {
		return nil
	}
	err = forEach(ctx, groups, func(ctx context.Context, ref chunkRef, s []sample) error {
		return db.mergeChunk(ctx, ref, s) // a scan returns them sorted
	})
	if err != nil {
		return err
	}
	if err := db.cfg.KV.DeleteRange(ctx, db.cfg.Namespace, start, end); err != nil {
		return storageErr("delete compacted raw samples", err)
	}
	db.m.compacted.Add(float64(n))
	return nil
}

// Retain deletes the chunks and raw samples of windows before cutoff.
func (db *DB) Retain(ctx context.Context, cutoff int64) error {
	for s := range 256 {
		for _, kind := range []byte{kindChunk, kindRaw} {
			start, end := windowsRange(kind, byte(s), minTime, cutoff)
			if err := db.cfg.KV.DeleteRange(ctx, db.cfg.Namespace, start, end); err != nil {
				return storageErr("delete samples past retention", err)
			}
		}
	}
	return nil
}
