package chainfire

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
)

// Queries served by Lookup (through raftnode.Read for linearizable reads and
// raftnode.StaleRead for serializable ones).
type (
	rangeQuery   struct{ req *etcdserverpb.RangeRequest }
	leasesQuery  struct{}
	leaseQuery   struct{ id int64 }
	membersQuery struct{}
	revQuery     struct{}
	txnQuery     struct{ req *etcdserverpb.TxnRequest } // read-only
	sysGetQuery  struct{ key []byte }
	sysListQuery struct{ prefix []byte }
)

type leaseInfo struct {
	id, ttl int64
	keys    [][]byte
}

type revInfo struct{ rev, compacted int64 }

// Lookup answers a query from the committed state.
func (f *fsm) Lookup(q any) (any, error) {
	v := f.view()
	switch q := q.(type) {
	case rangeQuery:
		return v.rangeKVs(q.req)
	case txnQuery:
		// A read-only txn runs like a write txn on a batch that is never
		// committed, so comparisons and reads see one consistent state.
		b := f.db.NewIndexedBatch()
		defer b.Close()
		w := writer{view: view{st: f.st, r: b, rev: v.rev, compacted: v.compacted}, txn: f.st.Begin(b, v.rev)}
		if err := w.checkTxn(q.req); err != nil {
			return nil, err
		}
		resp, err := w.txnOps(q.req, &w.view)
		if err != nil {
			return nil, err
		}
		resp.Header.Revision = v.rev
		return resp, nil
	case revQuery:
		return revInfo{rev: v.rev, compacted: v.compacted}, nil
	case leasesQuery:
		var out []leaseInfo
		err := f.st.Leases(f.db, func(id, ttl int64) { out = append(out, leaseInfo{id: id, ttl: ttl}) })
		return out, err
	case leaseQuery:
		ttl, err := f.st.LeaseTTL(f.db, q.id)
		if err != nil {
			return nil, err
		}
		keys, err := f.st.LeaseKeys(f.db, q.id)
		return leaseInfo{id: q.id, ttl: ttl, keys: keys}, err
	case membersQuery:
		return f.members.list(f.db)
	case sysGetQuery:
		return f.st.SysGet(f.db, q.key)
	case sysListQuery:
		return f.st.SysList(f.db, q.prefix)
	}
	return nil, fmt.Errorf("chainfire: unknown query %T", q)
}

// requestCompaction asks the compactor to remove history below rev.
func (f *fsm) requestCompaction(rev int64) {
	f.compactMu.Lock()
	if rev > f.compactWant {
		f.compactWant = rev
	}
	f.compactMu.Unlock()
	select {
	case f.compactKick <- struct{}{}:
	default:
	}
}

// compactBatch bounds the deletions of one compaction batch, so compaction
// never holds a large batch or starves the apply loop.
const compactBatch = 1000

// runCompactor removes compacted history in the background until ctx ends.
// It writes outside raft (NoSync): what it deletes is invisible to every read
// already, and a crash only means the work is redone after restart.
func (f *fsm) runCompactor(ctx context.Context) {
	done := int64(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.compactKick:
		}
		f.compactMu.Lock()
		want := f.compactWant
		f.compactMu.Unlock()
		if want <= done {
			continue
		}
		if err := f.compact(ctx, want); err != nil {
			f.log.Error("Compaction failed; it will be retried on the next compaction request", "revision", want, "err", err)
			continue
		}
		done = want
	}
}

func (f *fsm) compact(ctx context.Context, rev int64) error {
	var next []byte
	for first := true; first || next != nil; first = false {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b := f.db.NewBatch()
		var err error
		next, err = f.st.CompactChunk(f.db, b, rev, next, compactBatch)
		if err == nil && next == nil {
			err = f.st.SetPhysical(b, rev)
		}
		if err == nil {
			err = b.Commit(pebble.NoSync)
		}
		b.Close()
		if err != nil {
			return err
		}
	}
	f.log.Info("Compacted history", "revision", rev)
	return nil
}
