package tsdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/centra-cloud/centra/flaredb/client"
)

// Series is a label set and samples to write (any order, duplicates
// allowed).
type Series struct {
	Labels  labels.Labels
	Samples []Sample
}

// Sample is one float sample; Value keeps its exact bits.
type Sample struct {
	T int64
	V float64
}

// maxProbe bounds the IDs tried for one label set on hash collisions.
const maxProbe = 64

// Write stores the samples of ss and returns once every one of them is
// committed through raft (DESIGN.md, "Ingest and durability"). The label
// sets must have passed checkLabels. A failure wraps ErrStorage; retrying
// the same write is safe.
func (db *DB) Write(ctx context.Context, ss []Series) error {
	ids, err := db.resolve(ctx, ss)
	if err != nil {
		return err
	}
	closedBefore := db.cfg.Now().Add(-db.cfg.OutOfOrderWindow).UnixMilli()
	var raws []client.KvPair
	late := map[chunkRef][]sample{}
	for i, s := range ss {
		for _, x := range s.Samples {
			if windowOf(x.T)+windowMs <= closedBefore {
				ref := chunkRef{ids[i], windowOf(x.T)}
				late[ref] = append(late[ref], sample{x.T, x.V})
				continue
			}
			raws = append(raws, client.KvPair{Key: rawKey(ids[i], x.T), Value: floatBytes(x.V)})
		}
	}
	for len(raws) > 0 {
		n := min(len(raws), batchKeys)
		if err := db.cfg.KV.BatchPut(ctx, db.cfg.Namespace, raws[:n]); err != nil {
			return storageErr("write raw samples", err)
		}
		db.m.samples.WithLabelValues("raw").Add(float64(n))
		raws = raws[n:]
	}
	if err := db.mergeLate(ctx, late); err != nil {
		return err
	}
	db.touch(ids)
	return nil
}

type chunkRef struct {
	id     uint64
	window int64
}

func floatBytes(v float64) []byte { return binary.BigEndian.AppendUint64(nil, math.Float64bits(v)) }

func bytesFloat(b []byte) float64 { return math.Float64frombits(binary.BigEndian.Uint64(b)) }

// mergeLate merges samples of closed windows into their chunks,
// concurrently.
func (db *DB) mergeLate(ctx context.Context, late map[chunkRef][]sample) error {
	return forEach(ctx, late, func(ctx context.Context, ref chunkRef, s []sample) error {
		if err := db.mergeChunk(ctx, ref, sortDedup(s)); err != nil {
			return err
		}
		db.m.samples.WithLabelValues("late").Add(float64(len(s)))
		return nil
	})
}

// mergeChunk merges sorted, deduplicated samples into a chunk with
// compare-and-swap, retrying when another writer changed it meanwhile.
func (db *DB) mergeChunk(ctx context.Context, ref chunkRef, s []sample) error {
	key := chunkKey(ref.id, ref.window)
	prev, found, err := db.cfg.KV.Get(ctx, db.cfg.Namespace, key)
	if err != nil {
		return storageErr("read a chunk", err)
	}
	for {
		var old []sample
		if found {
			if old, err = decodeChunks(nil, prev); err != nil {
				return fmt.Errorf("chunk of series %016x window %d: %w", ref.id, ref.window, err)
			}
		}
		val, err := encodeChunks(merge(old, s))
		if err != nil {
			return err
		}
		if found && bytes.Equal(val, prev) {
			return nil
		}
		ok, cur, existed, err := db.cfg.KV.CompareAndSwap(ctx, db.cfg.Namespace, key, prev, !found, val)
		if err != nil {
			return storageErr("write a chunk", err)
		}
		if ok {
			return nil
		}
		prev, found = cur, existed
	}
}

// concurrency bounds the concurrent FlareDB calls of one operation.
const concurrency = 16

// forEach calls fn for each entry of m with bounded concurrency and returns
// the first error.
func forEach[K comparable, V any](ctx context.Context, m map[K]V, fn func(context.Context, K, V) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		once sync.Once
		ferr error
		sem  = make(chan struct{}, concurrency)
	)
	for k, v := range m {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, k, v); err != nil {
				once.Do(func() { ferr = err; cancel() })
			}
		})
	}
	wg.Wait()
	return ferr
}

// resolve returns the series ID of each label set, creating the series
// that do not exist yet.
func (db *DB) resolve(ctx context.Context, ss []Series) ([]uint64, error) {
	ids := make([]uint64, len(ss))
	missing := map[string]labels.Labels{}
	for i, s := range ss {
		enc := string(encodeLabels(s.Labels))
		if id, ok := db.cachedID(enc); ok {
			ids[i] = id
			continue
		}
		missing[enc] = s.Labels
	}
	if len(missing) > 0 {
		if err := db.createSeries(ctx, missing); err != nil {
			return nil, err
		}
		for i, s := range ss {
			if ids[i] == 0 {
				ids[i], _ = db.cachedID(string(encodeLabels(s.Labels)))
			}
		}
	}
	return ids, nil
}

// createSeries finds or creates the series of label sets (keyed by their
// encoding): index entries first, then the catalogue entry by
// compare-and-swap, probing the next ID on a hash collision.
func (db *DB) createSeries(ctx context.Context, sets map[string]labels.Labels) error {
	var idx []client.KvPair
	for enc, ls := range sets {
		idx = append(idx, indexPairs(seriesID([]byte(enc)), ls)...)
	}
	for len(idx) > 0 {
		n := min(len(idx), batchKeys)
		if err := db.cfg.KV.BatchPut(ctx, db.cfg.Namespace, idx[:n]); err != nil {
			return storageErr("write the label index", err)
		}
		idx = idx[n:]
	}
	return forEach(ctx, sets, func(ctx context.Context, enc string, ls labels.Labels) error {
		id := seriesID([]byte(enc))
		for range maxProbe {
			ok, cur, _, err := db.cfg.KV.CompareAndSwap(ctx, db.cfg.Namespace, seriesKey(id), nil, true, []byte(enc))
			if err != nil {
				return storageErr("create a series", err)
			}
			if ok || string(cur) == enc {
				if ok {
					db.m.seriesCreated.Inc()
				}
				db.cacheSeries(id, enc, ls)
				return nil
			}
			id++
			db.log.Warn("Series ID collision, probing the next ID", "series", ls.String(), "id", fmt.Sprintf("%016x", id))
			if err := db.cfg.KV.BatchPut(ctx, db.cfg.Namespace, indexPairs(id, ls)); err != nil {
				return storageErr("write the label index", err)
			}
		}
		return errors.New("tsdb: no free series ID after 64 probes")
	})
}

// indexPairs are the index keys of series id.
func indexPairs(id uint64, ls labels.Labels) []client.KvPair {
	var out []client.KvPair
	ls.Range(func(l labels.Label) {
		out = append(out,
			client.KvPair{Key: indexKey(l.Name, l.Value, id)},
			client.KvPair{Key: valueKey(l.Name, l.Value)},
			client.KvPair{Key: nameKey(l.Name)})
	})
	return out
}

// writeContext bounds a write by the configured timeout.
func (db *DB) writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, db.cfg.WriteTimeout)
}

// safetyMargin is how long after a window closes the compactor waits
// before it range-deletes the window's raw keys (DESIGN.md).
func (db *DB) safetyMargin() time.Duration { return 2*db.cfg.WriteTimeout + time.Minute }
