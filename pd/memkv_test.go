package pd

import (
	"bytes"
	"context"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/centra-cloud/centra/chainfire/client"
)

// memKV is an in-memory client.SystemKV: a versioned map with CAS shared by
// several Servers; each view decides whether its Server leads.
type memKV struct {
	mu        sync.Mutex
	data      map[string]client.SysKV
	leaderURL atomic.Value  // string
	terms     atomic.Uint64 // the last raft term any view led in
	reads     atomic.Int64  // Get and List calls (raft reads in production)
	// txnHook, when set, runs at the start of every Txn (a slow raft
	// round in tests).
	txnHook atomic.Pointer[func()]
}

func newMemKV() *memKV {
	m := &memKV{data: map[string]client.SysKV{}}
	m.leaderURL.Store("")
	return m
}

// view is one node's handle on the shared store.
type view struct {
	*memKV
	leader atomic.Bool
	term   atomic.Uint64
}

func (m *memKV) view(leader bool) *view {
	v := &view{memKV: m}
	v.setLeader(leader)
	return v
}

// setLeader makes the view lead (in a new term, as a raft election would)
// or follow.
func (v *view) setLeader(leader bool) {
	if leader {
		v.term.Store(v.terms.Add(1))
	}
	v.leader.Store(leader)
}

func (v *view) IsLeader() bool { return v.leader.Load() }

func (v *view) LeaderTerm() (uint64, bool) { return v.term.Load(), v.leader.Load() }

func (m *memKV) LeaderURL(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	u := m.leaderURL.Load().(string)
	if u == "" {
		return "", client.ErrNotLeader
	}
	return u, nil
}

func (m *memKV) Get(ctx context.Context, key []byte) (client.SysKV, error) {
	m.reads.Add(1)
	if err := ctx.Err(); err != nil {
		return client.SysKV{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	kv, ok := m.data[string(key)]
	if !ok {
		return client.SysKV{Key: key}, nil
	}
	return clone(kv), nil
}

func (m *memKV) List(ctx context.Context, prefix []byte) ([]client.SysKV, error) {
	m.reads.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []client.SysKV
	for k, kv := range m.data {
		if bytes.HasPrefix([]byte(k), prefix) {
			out = append(out, clone(kv))
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 })
	return out, nil
}

func (m *memKV) Txn(ctx context.Context, cmps []client.SysCompare, puts []client.SysKV, dels [][]byte) (bool, error) {
	if h := m.txnHook.Load(); h != nil {
		(*h)()
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range cmps {
		if m.data[string(c.Key)].Version != c.Version {
			return false, nil
		}
	}
	for _, d := range dels {
		delete(m.data, string(d))
	}
	for _, p := range puts {
		ver := m.data[string(p.Key)].Version + 1
		m.data[string(p.Key)] = client.SysKV{Key: bytes.Clone(p.Key), Value: bytes.Clone(p.Value), Version: ver}
	}
	return true, nil
}

func clone(kv client.SysKV) client.SysKV {
	return client.SysKV{Key: bytes.Clone(kv.Key), Value: bytes.Clone(kv.Value), Version: kv.Version}
}

var _ client.SystemKV = (*view)(nil)
