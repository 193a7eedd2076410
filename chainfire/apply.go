package chainfire

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/mvccpb"
)

// applyErrors are the deterministic failures of a command, carried in the
// raft Result's Value (0 = success). The numbers are part of the apply
// contract between replicas of different versions: append only.
var applyErrors = []error{
	1:  ErrKeyNotFound,
	2:  ErrLeaseNotFound,
	3:  ErrLeaseExist,
	4:  ErrCompacted,
	5:  ErrFutureRev,
	6:  ErrBadCommand,
	7:  ErrLeaseTTLTooLarge,
	8:  ErrMemberExists,
	9:  ErrPeerURLExists,
	10: ErrMemberNotFound,
	11: ErrMemberNotLearner,
	12: ErrNoSpace,
	13: ErrCorrupt,
	14: ErrRootUserNotExist,
	15: ErrRootRoleNotExist,
	16: ErrUserAlreadyExist,
	17: ErrUserEmpty,
	18: ErrUserNotFound,
	19: ErrRoleAlreadyExist,
	20: ErrRoleNotFound,
	21: ErrRoleEmpty,
	22: ErrPermissionNotGiven,
	23: ErrRoleNotGranted,
	24: ErrPermissionNotGranted,
	25: ErrInvalidAuthMgmt,
	26: ErrAuthOldRevision,
	27: ErrNoPasswordUser,
	28: ErrAuthNotEnabled,
	29: ErrAuthFailed,
}

func applyErrorCode(err error) (uint64, bool) {
	for code, e := range applyErrors {
		if e != nil && errors.Is(err, e) {
			return uint64(code), true
		}
	}
	return 0, false
}

func applyErrorFromCode(code uint64) error {
	if code < uint64(len(applyErrors)) && applyErrors[code] != nil {
		return applyErrors[code]
	}
	return fmt.Errorf("chainfire: unknown apply error code %d (a newer replica?)", code)
}

// view is the state a command sees while it is applied or read.
type view struct {
	st        *mvcc.Store
	r         pebble.Reader
	rev       int64 // newest revision visible in r
	compacted int64
}

// checkRev resolves a requested read revision (0 = newest).
func (v *view) checkRev(rev int64) (int64, error) {
	switch {
	case rev <= 0:
		return v.rev, nil
	case rev > v.rev:
		return 0, ErrFutureRev
	case rev < v.compacted:
		return 0, ErrCompacted
	}
	return rev, nil
}

// rangeKVs answers a RangeRequest with etcd's semantics (limit, sort,
// filters, count, keys/count only).
func (v *view) rangeKVs(req *etcdserverpb.RangeRequest) (*etcdserverpb.RangeResponse, error) {
	rev, err := v.checkRev(req.Revision)
	if err != nil {
		return nil, err
	}
	// As etcd: a sort target other than the key without an order sorts
	// ascending; the key ascending is storage order already.
	order := req.SortOrder
	if order == etcdserverpb.RangeRequest_NONE && req.SortTarget != etcdserverpb.RangeRequest_KEY {
		order = etcdserverpb.RangeRequest_ASCEND
	}
	sorted := order != etcdserverpb.RangeRequest_NONE &&
		!(req.SortTarget == etcdserverpb.RangeRequest_KEY && order == etcdserverpb.RangeRequest_ASCEND)
	filtered := req.MinModRevision != 0 || req.MaxModRevision != 0 || req.MinCreateRevision != 0 || req.MaxCreateRevision != 0
	// Without sorting or filters only limit+1 keys are kept: the rest are
	// only counted.
	keep := int64(-1)
	if req.Limit > 0 && !sorted && !filtered {
		keep = req.Limit + 1
	}
	var kvs []*mvccpb.KeyValue
	count, err := v.st.Range(v.r, req.Key, req.RangeEnd, rev, func(kv *mvccpb.KeyValue) bool {
		if req.CountOnly {
			return true
		}
		if !passes(req, kv) {
			return true
		}
		if keep < 0 || int64(len(kvs)) < keep {
			kvs = append(kvs, kv)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if sorted {
		sortKVs(kvs, req.SortTarget, order == etcdserverpb.RangeRequest_DESCEND)
	}
	resp := &etcdserverpb.RangeResponse{Header: &etcdserverpb.ResponseHeader{Revision: v.rev}, Count: count}
	if req.Limit > 0 && int64(len(kvs)) > req.Limit {
		kvs = kvs[:req.Limit]
		resp.More = true
	}
	if req.KeysOnly {
		for _, kv := range kvs {
			kv.Value = nil
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

func passes(req *etcdserverpb.RangeRequest, kv *mvccpb.KeyValue) bool {
	return (req.MinModRevision == 0 || kv.ModRevision >= req.MinModRevision) &&
		(req.MaxModRevision == 0 || kv.ModRevision <= req.MaxModRevision) &&
		(req.MinCreateRevision == 0 || kv.CreateRevision >= req.MinCreateRevision) &&
		(req.MaxCreateRevision == 0 || kv.CreateRevision <= req.MaxCreateRevision)
}

func sortKVs(kvs []*mvccpb.KeyValue, target etcdserverpb.RangeRequest_SortTarget, desc bool) {
	less := func(a, b *mvccpb.KeyValue) bool {
		switch target {
		case etcdserverpb.RangeRequest_VERSION:
			return a.Version < b.Version
		case etcdserverpb.RangeRequest_CREATE:
			return a.CreateRevision < b.CreateRevision
		case etcdserverpb.RangeRequest_MOD:
			return a.ModRevision < b.ModRevision
		case etcdserverpb.RangeRequest_VALUE:
			return bytes.Compare(a.Value, b.Value) < 0
		default:
			return bytes.Compare(a.Key, b.Key) < 0
		}
	}
	sort.SliceStable(kvs, func(i, j int) bool {
		if desc {
			return less(kvs[j], kvs[i])
		}
		return less(kvs[i], kvs[j])
	})
}

// compare evaluates one txn comparison against the newest state.
func (v *view) compare(c *etcdserverpb.Compare) (bool, error) {
	var kvs []*mvccpb.KeyValue
	if _, err := v.st.Range(v.r, c.Key, c.RangeEnd, v.rev, func(kv *mvccpb.KeyValue) bool {
		kvs = append(kvs, kv)
		return true
	}); err != nil {
		return false, err
	}
	if len(kvs) == 0 {
		if c.Target == etcdserverpb.Compare_VALUE {
			return false, nil
		}
		return compareKV(c, &mvccpb.KeyValue{}), nil
	}
	for _, kv := range kvs {
		if !compareKV(c, kv) {
			return false, nil
		}
	}
	return true, nil
}

func compareKV(c *etcdserverpb.Compare, kv *mvccpb.KeyValue) bool {
	var r int
	switch c.Target {
	case etcdserverpb.Compare_VALUE:
		r = bytes.Compare(kv.Value, c.GetValue())
	case etcdserverpb.Compare_VERSION:
		r = cmpInt(kv.Version, c.GetVersion())
	case etcdserverpb.Compare_CREATE:
		r = cmpInt(kv.CreateRevision, c.GetCreateRevision())
	case etcdserverpb.Compare_MOD:
		r = cmpInt(kv.ModRevision, c.GetModRevision())
	case etcdserverpb.Compare_LEASE:
		r = cmpInt(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case etcdserverpb.Compare_EQUAL:
		return r == 0
	case etcdserverpb.Compare_NOT_EQUAL:
		return r != 0
	case etcdserverpb.Compare_GREATER:
		return r > 0
	case etcdserverpb.Compare_LESS:
		return r < 0
	}
	return false
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// writer applies one write command inside a raft batch.
type writer struct {
	view
	txn *mvcc.Txn
}

// checkPut verifies a put can be applied in full before anything is written.
func (w *writer) checkPut(p *etcdserverpb.PutRequest) error {
	if p.Lease != 0 {
		if _, err := w.st.LeaseTTL(w.r, p.Lease); err != nil {
			return err
		}
	}
	if p.IgnoreValue || p.IgnoreLease {
		prev, err := w.st.Get(w.r, p.Key, w.rev)
		if err != nil {
			return err
		}
		if prev == nil {
			return ErrKeyNotFound
		}
	}
	return nil
}

func (w *writer) put(p *etcdserverpb.PutRequest) (*etcdserverpb.PutResponse, error) {
	value, lease := p.Value, p.Lease
	if p.IgnoreValue || p.IgnoreLease {
		prev, err := w.st.Get(w.txn.Reader(), p.Key, w.txn.Revision()+1)
		if err != nil {
			return nil, err
		}
		if p.IgnoreValue {
			value = prev.Value
		}
		if p.IgnoreLease {
			lease = prev.Lease
		}
	}
	_, prev, err := w.txn.Put(p.Key, value, lease, p.PrevKv)
	if err != nil {
		return nil, err
	}
	// etcd reports the revision the put created, also inside a txn
	// (Kubernetes reads a create's resourceVersion from there).
	resp := &etcdserverpb.PutResponse{Header: &etcdserverpb.ResponseHeader{Revision: w.txn.Revision()}}
	if p.PrevKv && prev != nil {
		resp.PrevKv = prev
	}
	return resp, nil
}

func (w *writer) deleteRange(d *etcdserverpb.DeleteRangeRequest) (*etcdserverpb.DeleteRangeResponse, error) {
	deleted, err := w.txn.DeleteRange(d.Key, d.RangeEnd)
	if err != nil {
		return nil, err
	}
	// As etcd: the txn's revision once anything in it changed, else the
	// revision before it.
	resp := &etcdserverpb.DeleteRangeResponse{Header: &etcdserverpb.ResponseHeader{Revision: w.txn.Revision()}, Deleted: int64(len(deleted))}
	if d.PrevKv {
		resp.PrevKvs = deleted
	}
	return resp, nil
}

// branch evaluates the comparisons of a txn against v and returns the
// chosen operations.
func (v *view) branch(t *etcdserverpb.TxnRequest) (bool, []*etcdserverpb.RequestOp, error) {
	for _, c := range t.Compare {
		ok, err := v.compare(c)
		if err != nil {
			return false, nil, err
		}
		if !ok {
			return false, t.Failure, nil
		}
	}
	return true, t.Success, nil
}

// checkTxn verifies the chosen branch (recursively) can be applied in full.
func (w *writer) checkTxn(t *etcdserverpb.TxnRequest) error {
	_, ops, err := w.branch(t)
	if err != nil {
		return err
	}
	for _, op := range ops {
		switch r := op.Request.(type) {
		case *etcdserverpb.RequestOp_RequestRange:
			if _, err := w.checkRev(r.RequestRange.Revision); err != nil {
				return err
			}
		case *etcdserverpb.RequestOp_RequestPut:
			if err := w.checkPut(r.RequestPut); err != nil {
				return err
			}
		case *etcdserverpb.RequestOp_RequestTxn:
			if err := w.checkTxn(r.RequestTxn); err != nil {
				return err
			}
		}
	}
	return nil
}

// nestedTxnVersion is the command version from which the comparisons of
// nested txns are evaluated against the state before the whole txn, as
// etcd's compareToPath does; older entries saw the writes of the operations
// before them and are replayed that way.
const nestedTxnVersion = 3

// hasNestedTxn reports whether t holds a txn in either branch.
func hasNestedTxn(t *etcdserverpb.TxnRequest) bool {
	for _, ops := range [][]*etcdserverpb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			if _, ok := op.Request.(*etcdserverpb.RequestOp_RequestTxn); ok {
				return true
			}
		}
	}
	return false
}

// txnOps applies a (checked) txn. cmp, when set, is the state every
// comparison is evaluated against (the state before the top-level txn:
// command version >= nestedTxnVersion); nil evaluates a nested txn's
// comparisons after the operations before it (older entries).
func (w *writer) txnOps(t *etcdserverpb.TxnRequest, cmp *view) (*etcdserverpb.TxnResponse, error) {
	inner := w.view
	inner.r, inner.rev = w.txn.Reader(), w.txn.Revision()
	sub := writer{view: inner, txn: w.txn}
	judge := &sub.view
	if cmp != nil {
		judge = cmp
	}
	ok, ops, err := judge.branch(t)
	if err != nil {
		return nil, err
	}
	resp := &etcdserverpb.TxnResponse{Header: &etcdserverpb.ResponseHeader{}, Succeeded: ok, Responses: make([]*etcdserverpb.ResponseOp, 0, len(ops))}
	for _, op := range ops {
		// Reads inside the txn see its own earlier writes.
		sub.view.r, sub.view.rev = w.txn.Reader(), w.txn.Revision()
		var out etcdserverpb.ResponseOp
		switch r := op.Request.(type) {
		case *etcdserverpb.RequestOp_RequestRange:
			rr, err := sub.rangeKVs(r.RequestRange)
			if err != nil {
				return nil, err
			}
			out.Response = &etcdserverpb.ResponseOp_ResponseRange{ResponseRange: rr}
		case *etcdserverpb.RequestOp_RequestPut:
			pr, err := sub.put(r.RequestPut)
			if err != nil {
				return nil, err
			}
			out.Response = &etcdserverpb.ResponseOp_ResponsePut{ResponsePut: pr}
		case *etcdserverpb.RequestOp_RequestDeleteRange:
			dr, err := sub.deleteRange(r.RequestDeleteRange)
			if err != nil {
				return nil, err
			}
			out.Response = &etcdserverpb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: dr}
		case *etcdserverpb.RequestOp_RequestTxn:
			tr, err := sub.txnOps(r.RequestTxn, cmp)
			if err != nil {
				return nil, err
			}
			out.Response = &etcdserverpb.ResponseOp_ResponseTxn{ResponseTxn: tr}
		default:
			return nil, ErrBadCommand
		}
		resp.Responses = append(resp.Responses, &out)
	}
	return resp, nil
}
