package tsdb

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/centra-cloud/centra/flaredb/client"
)

// Queryable returns a storage.Queryable over db whose selects load at
// most maxSamples samples (0: no limit).
func (db *DB) Queryable(maxSamples int) storage.Queryable {
	return storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		return &querier{db: db, mint: mint, maxt: maxt, maxSamples: maxSamples}, nil
	})
}

type querier struct {
	db         *DB
	mint, maxt int64
	maxSamples int
}

func (q *querier) Close() error { return nil }

// Select returns the series every matcher accepts, sorted by labels, with
// their samples in the hinted time range.
func (q *querier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	found, err := q.db.match(ctx, ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if hints != nil && hints.Limit > 0 && len(found) > hints.Limit {
		found = found[:hints.Limit]
	}
	out := make([]storage.Series, 0, len(found))
	if hints != nil && hints.Func == "series" {
		for _, f := range found {
			out = append(out, &series{ls: f.ls})
		}
		return &seriesSet{list: out}
	}
	samples, err := q.db.load(ctx, found, mint, maxt, q.maxSamples)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	for i, f := range found {
		if len(samples[i]) > 0 {
			out = append(out, &series{ls: f.ls, samples: samples[i]})
		}
	}
	return &seriesSet{list: out}
}

// LabelValues returns the values of label name, of the series matching ms
// if any are given.
func (q *querier) LabelValues(ctx context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if len(ms) == 0 {
		p := valuesPrefix(name)
		vs, err := q.db.scanSuffixes(ctx, p)
		return vs, nil, err
	}
	found, err := q.db.match(ctx, ms)
	if err != nil {
		return nil, nil, err
	}
	set := map[string]struct{}{}
	for _, f := range found {
		if v := f.ls.Get(name); v != "" {
			set[v] = struct{}{}
		}
	}
	return sortedKeys(set), nil, nil
}

// LabelNames returns the label names, of the series matching ms if any are
// given.
func (q *querier) LabelNames(ctx context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if len(ms) == 0 {
		ns, err := q.db.scanSuffixes(ctx, namesPrefix())
		return ns, nil, err
	}
	found, err := q.db.match(ctx, ms)
	if err != nil {
		return nil, nil, err
	}
	set := map[string]struct{}{}
	for _, f := range found {
		f.ls.Range(func(l labels.Label) { set[l.Name] = struct{}{} })
	}
	return sortedKeys(set), nil, nil
}

func sortedKeys(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// scanSuffixes returns what follows p in the keys with prefix p, in order.
func (db *DB) scanSuffixes(ctx context.Context, p []byte) ([]string, error) {
	var out []string
	err := db.cfg.KV.ScanFunc(ctx, db.cfg.Namespace, p, prefixEnd(p), client.ScanOptions{KeyOnly: true}, func(kv client.KvPair) bool {
		out = append(out, string(kv.Key[len(p):]))
		return true
	})
	if err != nil {
		return nil, storageErr("scan the label index", err)
	}
	return out, nil
}

// found is a series that matched a select.
type found struct {
	id uint64
	ls labels.Labels
}

// match resolves matchers to the series they select, sorted by labels.
func (db *DB) match(ctx context.Context, ms []*labels.Matcher) ([]found, error) {
	var cand map[uint64]struct{}
	for _, m := range ms {
		if m.Matches("") {
			continue // selects series without the label too: filter only
		}
		ids, err := db.matchIDs(ctx, m)
		if err != nil {
			return nil, err
		}
		if cand == nil {
			cand = ids
			continue
		}
		for id := range cand {
			if _, ok := ids[id]; !ok {
				delete(cand, id)
			}
		}
	}
	if cand == nil { // no selecting matcher: every series
		p := seriesPrefix()
		cand = map[uint64]struct{}{}
		err := db.cfg.KV.ScanFunc(ctx, db.cfg.Namespace, p, prefixEnd(p), client.ScanOptions{KeyOnly: true}, func(kv client.KvPair) bool {
			if len(kv.Key) == len(p)+idLen {
				cand[binary.BigEndian.Uint64(kv.Key[len(p):])] = struct{}{}
			}
			return true
		})
		if err != nil {
			return nil, storageErr("scan the series catalogue", err)
		}
	}
	sets, err := db.labelsOf(ctx, cand)
	if err != nil {
		return nil, err
	}
	var out []found
	for id, ls := range sets {
		if matchesAll(ls, ms) {
			out = append(out, found{id, ls})
		}
	}
	slices.SortFunc(out, func(a, b found) int { return labels.Compare(a.ls, b.ls) })
	return out, nil
}

func matchesAll(ls labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

// matchIDs returns the IDs of the series with a label value m accepts.
func (db *DB) matchIDs(ctx context.Context, m *labels.Matcher) (map[uint64]struct{}, error) {
	values := []string{m.Value}
	if m.Type != labels.MatchEqual {
		all, err := db.scanSuffixes(ctx, valuesPrefix(m.Name))
		if err != nil {
			return nil, err
		}
		values = values[:0]
		for _, v := range all {
			if m.Matches(v) {
				values = append(values, v)
			}
		}
	}
	ids := map[uint64]struct{}{}
	for _, v := range values {
		p := indexPrefix(m.Name, v)
		err := db.cfg.KV.ScanFunc(ctx, db.cfg.Namespace, p, prefixEnd(p), client.ScanOptions{KeyOnly: true}, func(kv client.KvPair) bool {
			if len(kv.Key) == len(p)+idLen {
				ids[binary.BigEndian.Uint64(kv.Key[len(p):])] = struct{}{}
			}
			return true
		})
		if err != nil {
			return nil, storageErr("scan the label index", err)
		}
	}
	return ids, nil
}

// labelsOf returns the label sets of the IDs that exist in the catalogue.
func (db *DB) labelsOf(ctx context.Context, ids map[uint64]struct{}) (map[uint64]labels.Labels, error) {
	out := make(map[uint64]labels.Labels, len(ids))
	var keys [][]byte
	for id := range ids {
		if ls, ok := db.cachedLabels(id); ok {
			out[id] = ls
			continue
		}
		keys = append(keys, seriesKey(id))
	}
	for len(keys) > 0 {
		n := min(len(keys), batchKeys)
		pairs, err := db.cfg.KV.BatchGet(ctx, db.cfg.Namespace, keys[:n])
		if err != nil {
			return nil, storageErr("read the series catalogue", err)
		}
		for _, p := range pairs {
			ls, err := decodeLabels(p.Value)
			if err != nil {
				return nil, fmt.Errorf("series key %x: %w", p.Key, err)
			}
			id := binary.BigEndian.Uint64(p.Key[2:])
			out[id] = ls
			db.cacheSeries(id, "", ls)
		}
		keys = keys[n:]
	}
	return out, nil
}

// load reads the samples of each series in [mint, maxt]: chunks of the
// windows in range and raw keys of the windows at or above the watermark,
// raw winning over chunk at equal times.
func (db *DB) load(ctx context.Context, fs []found, mint, maxt int64, maxSamples int) ([][]sample, error) {
	out := make([][]sample, len(fs))
	if mint > maxt || len(fs) == 0 {
		return out, nil
	}
	wm, err := db.watermark(ctx)
	if err != nil {
		return nil, err
	}
	first, last := windowOf(mint), windowOf(maxt)
	// Chunks: exact keys, fetched in batches.
	pos := map[string]int{}
	var keys [][]byte
	flush := func() error {
		pairs, err := db.cfg.KV.BatchGet(ctx, db.cfg.Namespace, keys)
		if err != nil {
			return storageErr("read chunks", err)
		}
		for _, p := range pairs {
			i := pos[string(p.Key)]
			if out[i], err = decodeChunks(out[i], p.Value); err != nil {
				return fmt.Errorf("chunk key %x: %w", p.Key, err)
			}
		}
		clear(pos)
		keys = keys[:0]
		return nil
	}
	total := 0
	for i, f := range fs {
		for w := first; w <= last; w += windowMs {
			k := chunkKey(f.id, w)
			pos[string(k)] = i
			keys = append(keys, k)
			if len(keys) == batchKeys {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
	}
	if len(keys) > 0 {
		if err := flush(); err != nil {
			return nil, err
		}
	}
	idx := make(map[int]uint64, len(fs))
	for i, f := range fs {
		idx[i] = f.id
	}
	var mu sync.Mutex
	err = forEach(ctx, idx, func(ctx context.Context, i int, id uint64) error {
		var raw []sample
		for w := max(first, wm); w <= last; w += windowMs {
			start, end := rawSeriesRange(id, w, max(mint, w), min(maxt, w+windowMs-1))
			err := db.cfg.KV.ScanFunc(ctx, db.cfg.Namespace, start, end, client.ScanOptions{}, func(p client.KvPair) bool {
				if _, _, t, ok := parseRawKey(p.Key); ok && len(p.Value) == 8 {
					raw = append(raw, sample{t, bytesFloat(p.Value)})
				}
				return true
			})
			if err != nil {
				return storageErr("read raw samples", err)
			}
		}
		s := cut(merge(out[i], raw), mint, maxt) // chunks came in window order, so sorted
		mu.Lock()
		defer mu.Unlock()
		out[i] = s
		total += len(s)
		if maxSamples > 0 && total > maxSamples {
			return fmt.Errorf("%w: more than %d samples in [%d, %d]; narrow the time range or the selector, or raise [timeseries] max_samples", ErrTooManySamples, maxSamples, mint, maxt)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// cut returns the samples of sorted s in [mint, maxt].
func cut(s []sample, mint, maxt int64) []sample {
	lo, _ := slices.BinarySearchFunc(s, mint, func(x sample, t int64) int { return cmp.Compare(x.t, t) })
	hi, found := slices.BinarySearchFunc(s, maxt, func(x sample, t int64) int { return cmp.Compare(x.t, t) })
	if found {
		hi++
	}
	return s[lo:hi]
}

// seriesSet is a storage.SeriesSet over loaded series.
type seriesSet struct {
	list []storage.Series
	cur  int
}

func (s *seriesSet) Next() bool {
	if s.cur >= len(s.list) {
		return false
	}
	s.cur++
	return true
}
func (s *seriesSet) At() storage.Series                { return s.list[s.cur-1] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

type series struct {
	ls      labels.Labels
	samples []sample
}

func (s *series) Labels() labels.Labels { return s.ls }

func (s *series) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return storage.NewListSeriesIterator(sampleList(s.samples))
}

// sampleList adapts samples to storage.Samples.
type sampleList []sample

func (l sampleList) Get(i int) chunks.Sample { return l[i] }
func (l sampleList) Len() int                { return len(l) }

// sample implements chunks.Sample (floats only).
func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.v }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }
