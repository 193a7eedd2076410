// Package tsdbtest holds an in-memory KV for table tests of flaredb/tsdb's
// logic and of PromQL over it (the e2e tests run the TSDB on real FlareDB
// regions).
package tsdbtest

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/centra-cloud/centra/flaredb/client"
)

// MemKV is an in-memory tsdb.KV: one sorted map, namespaces ignored.
type MemKV struct {
	mu     sync.Mutex
	m      map[string][]byte
	sorted []string // the keys of m in order; nil after a change
}

// NewMemKV returns an empty MemKV.
func NewMemKV() *MemKV { return &MemKV{m: map[string][]byte{}} }

// Get implements tsdb.KV.
func (k *MemKV) Get(_ context.Context, _ string, key []byte) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[string(key)]
	return v, ok, nil
}

// Put implements tsdb.KV.
func (k *MemKV) Put(_ context.Context, _ string, key, value []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.m[string(key)]; !ok {
		k.sorted = nil
	}
	k.m[string(key)] = slices.Clone(value)
	return nil
}

// BatchGet implements tsdb.KV.
func (k *MemKV) BatchGet(ctx context.Context, ns string, keys [][]byte) ([]client.KvPair, error) {
	var out []client.KvPair
	for _, key := range keys {
		if v, ok, _ := k.Get(ctx, ns, key); ok {
			out = append(out, client.KvPair{Key: key, Value: v})
		}
	}
	return out, nil
}

// BatchPut implements tsdb.KV.
func (k *MemKV) BatchPut(ctx context.Context, ns string, pairs []client.KvPair) error {
	for _, p := range pairs {
		_ = k.Put(ctx, ns, p.Key, p.Value)
	}
	return nil
}

// CompareAndSwap implements tsdb.KV.
func (k *MemKV) CompareAndSwap(_ context.Context, _ string, key, prev []byte, prevNotExist bool, value []byte) (bool, []byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cur, ok := k.m[string(key)]
	if (prevNotExist && ok) || (!prevNotExist && (!ok || !bytes.Equal(cur, prev))) {
		return false, cur, ok, nil
	}
	if !ok {
		k.sorted = nil
	}
	k.m[string(key)] = slices.Clone(value)
	return true, cur, ok, nil
}

// Sorted returns the pairs with start <= key < end (empty end: no bound)
// in key order.
func (k *MemKV) Sorted(start, end []byte) []client.KvPair {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sorted == nil {
		k.sorted = slices.Sorted(maps.Keys(k.m))
	}
	i, _ := slices.BinarySearch(k.sorted, string(start))
	var out []client.KvPair
	for _, key := range k.sorted[i:] {
		if len(end) > 0 && key >= string(end) {
			break
		}
		out = append(out, client.KvPair{Key: []byte(key), Value: k.m[key]})
	}
	return out
}

// ScanFunc implements tsdb.KV.
func (k *MemKV) ScanFunc(_ context.Context, _ string, start, end []byte, _ client.ScanOptions, fn func(client.KvPair) bool) error {
	for _, p := range k.Sorted(start, end) {
		if !fn(p) {
			break
		}
	}
	return nil
}

// DeleteRange implements tsdb.KV.
func (k *MemKV) DeleteRange(_ context.Context, _ string, start, end []byte) error {
	for _, p := range k.Sorted(start, end) {
		k.mu.Lock()
		delete(k.m, string(p.Key))
		k.sorted = nil
		k.mu.Unlock()
	}
	return nil
}
