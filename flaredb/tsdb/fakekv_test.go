package tsdb

import (
	"bytes"
	"context"
	"slices"
	"sync"

	"github.com/centra-cloud/centra/flaredb/client"
)

// memKV is an in-memory KV for table tests of the TSDB's logic (the e2e
// tests run it on real FlareDB regions).
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (k *memKV) Get(_ context.Context, _ string, key []byte) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[string(key)]
	return v, ok, nil
}

func (k *memKV) Put(_ context.Context, _ string, key, value []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[string(key)] = slices.Clone(value)
	return nil
}

func (k *memKV) BatchGet(ctx context.Context, ns string, keys [][]byte) ([]client.KvPair, error) {
	var out []client.KvPair
	for _, key := range keys {
		if v, ok, _ := k.Get(ctx, ns, key); ok {
			out = append(out, client.KvPair{Key: key, Value: v})
		}
	}
	return out, nil
}

func (k *memKV) BatchPut(ctx context.Context, ns string, pairs []client.KvPair) error {
	for _, p := range pairs {
		_ = k.Put(ctx, ns, p.Key, p.Value)
	}
	return nil
}

func (k *memKV) CompareAndSwap(_ context.Context, _ string, key, prev []byte, prevNotExist bool, value []byte) (bool, []byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cur, ok := k.m[string(key)]
	if (prevNotExist && ok) || (!prevNotExist && (!ok || !bytes.Equal(cur, prev))) {
		return false, cur, ok, nil
	}
	k.m[string(key)] = slices.Clone(value)
	return true, cur, ok, nil
}

func (k *memKV) sorted(start, end []byte) []client.KvPair {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []client.KvPair
	for key, v := range k.m {
		if bytes.Compare([]byte(key), start) >= 0 && (len(end) == 0 || bytes.Compare([]byte(key), end) < 0) {
			out = append(out, client.KvPair{Key: []byte(key), Value: v})
		}
	}
	slices.SortFunc(out, func(a, b client.KvPair) int { return bytes.Compare(a.Key, b.Key) })
	return out
}

func (k *memKV) ScanFunc(_ context.Context, _ string, start, end []byte, _ client.ScanOptions, fn func(client.KvPair) bool) error {
	for _, p := range k.sorted(start, end) {
		if !fn(p) {
			break
		}
	}
	return nil
}

func (k *memKV) DeleteRange(_ context.Context, _ string, start, end []byte) error {
	for _, p := range k.sorted(start, end) {
		k.mu.Lock()
		delete(k.m, string(p.Key))
		k.mu.Unlock()
	}
	return nil
}
