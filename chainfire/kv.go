package chainfire

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
)

// maxTxnOps is the largest number of operations in one txn branch (etcd's
// default --max-txn-ops).
const maxTxnOps = 128

// response is an etcd response message (they all carry a header).
type response[T any] interface {
	*T
	proto.Message
	GetHeader() *etcdserverpb.ResponseHeader
}

// slowRequest is the write latency from which "Handled <op> request" is
// logged at info level (debug below), so the troubleshooting runbook's
// `grep -E 'latency=[0-9]{3,}ms'` finds exactly the slow ones.
const slowRequest = 100 * time.Millisecond

// write proposes cmd (the RPC op, e.g. "put") and returns the applied
// result as an RPC response T with a complete header.
func write[T any, R response[T]](ctx context.Context, s *Server, op string, cmd *raftcmdv1.Command) (*connect.Response[T], error) {
	began := time.Now()
	m, err := s.proposeResult(ctx, cmd)
	latency := time.Since(began)
	level := slog.LevelDebug
	if latency >= slowRequest {
		level = slog.LevelInfo
	}
	if s.log.Enabled(ctx, level) { // no formatting per request while debug is off
		s.log.Log(ctx, level, fmt.Sprintf("Handled %s request, latency=%dms", op, latency.Milliseconds()), "ok", err == nil)
	}
	if err != nil {
		return nil, toConnectError(err)
	}
	resp, err := resultAs[T, R](m)
	if err != nil {
		return nil, toConnectError(err)
	}
	s.header(resp.GetHeader())
	return connect.NewResponse((*T)(resp)), nil
}

// kvService implements etcdserverpb.KV.
type kvService struct{ s *Server }

func (k *kvService) Range(ctx context.Context, req *connect.Request[etcdserverpb.RangeRequest]) (*connect.Response[etcdserverpb.RangeResponse], error) {
	if len(req.Msg.Key) == 0 {
		return nil, toConnectError(ErrEmptyKey)
	}
	out, err := k.s.read(ctx, rangeQuery{req: req.Msg}, req.Msg.Serializable)
	if err != nil {
		return nil, toConnectError(err)
	}
	resp := out.(*etcdserverpb.RangeResponse)
	k.s.header(resp.Header)
	return connect.NewResponse(resp), nil
}

func checkPut(p *etcdserverpb.PutRequest) error {
	switch {
	case len(p.Key) == 0:
		return ErrEmptyKey
	case p.IgnoreValue && len(p.Value) != 0:
		return ErrValueProvided
	case p.IgnoreLease && p.Lease != 0:
		return ErrLeaseProvided
	}
	return nil
}

func (k *kvService) Put(ctx context.Context, req *connect.Request[etcdserverpb.PutRequest]) (*connect.Response[etcdserverpb.PutResponse], error) {
	if err := checkPut(req.Msg); err != nil {
		return nil, toConnectError(err)
	}
	return write[etcdserverpb.PutResponse](ctx, k.s, "put", &raftcmdv1.Command{Cmd: &raftcmdv1.Command_Put{Put: req.Msg}})
}

func (k *kvService) DeleteRange(ctx context.Context, req *connect.Request[etcdserverpb.DeleteRangeRequest]) (*connect.Response[etcdserverpb.DeleteRangeResponse], error) {
	if len(req.Msg.Key) == 0 {
		return nil, toConnectError(ErrEmptyKey)
	}
	return write[etcdserverpb.DeleteRangeResponse](ctx, k.s, "delete", &raftcmdv1.Command{Cmd: &raftcmdv1.Command_DeleteRange{DeleteRange: req.Msg}})
}

func (k *kvService) Txn(ctx context.Context, req *connect.Request[etcdserverpb.TxnRequest]) (*connect.Response[etcdserverpb.TxnResponse], error) {
	if err := checkTxn(req.Msg); err != nil {
		return nil, toConnectError(err)
	}
	if readOnly, serializable := txnReads(req.Msg); readOnly {
		// As etcd: a txn that writes nothing is a read, not a raft entry.
		out, err := k.s.read(ctx, txnQuery{req: req.Msg}, serializable)
		if err != nil {
			return nil, toConnectError(err)
		}
		resp := out.(*etcdserverpb.TxnResponse)
		k.s.header(resp.Header)
		return connect.NewResponse(resp), nil
	}
	return write[etcdserverpb.TxnResponse](ctx, k.s, "txn", &raftcmdv1.Command{Cmd: &raftcmdv1.Command_Txn{Txn: req.Msg}})
}

// txnReads reports whether a txn only reads (in both branches, nested txns
// included) and whether every read asked to be serializable.
func txnReads(t *etcdserverpb.TxnRequest) (readOnly, serializable bool) {
	serializable = true
	for _, ops := range [][]*etcdserverpb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			switch r := op.Request.(type) {
			case *etcdserverpb.RequestOp_RequestRange:
				serializable = serializable && r.RequestRange.Serializable
			case *etcdserverpb.RequestOp_RequestTxn:
				ro, ser := txnReads(r.RequestTxn)
				if !ro {
					return false, false
				}
				serializable = serializable && ser
			default:
				return false, false
			}
		}
	}
	return true, serializable
}

func (k *kvService) Compact(ctx context.Context, req *connect.Request[etcdserverpb.CompactionRequest]) (*connect.Response[etcdserverpb.CompactionResponse], error) {
	return write[etcdserverpb.CompactionResponse](ctx, k.s, "compaction", &raftcmdv1.Command{Cmd: &raftcmdv1.Command_Compaction{Compaction: req.Msg}})
}

// checkTxn validates a txn as etcd does: bounded size, keys present, and no
// key written twice in one branch.
func checkTxn(t *etcdserverpb.TxnRequest) error {
	if len(t.Compare) > maxTxnOps || len(t.Success) > maxTxnOps || len(t.Failure) > maxTxnOps {
		return ErrTooManyOps
	}
	for _, c := range t.Compare {
		if len(c.Key) == 0 {
			return ErrEmptyKey
		}
	}
	for _, ops := range [][]*etcdserverpb.RequestOp{t.Success, t.Failure} {
		if err := checkOps(ops); err != nil {
			return err
		}
	}
	return nil
}

func checkOps(ops []*etcdserverpb.RequestOp) error {
	var puts [][]byte
	var dels []*etcdserverpb.DeleteRangeRequest
	for _, op := range ops {
		switch r := op.Request.(type) {
		case *etcdserverpb.RequestOp_RequestRange:
			if len(r.RequestRange.Key) == 0 {
				return ErrEmptyKey
			}
		case *etcdserverpb.RequestOp_RequestPut:
			if err := checkPut(r.RequestPut); err != nil {
				return err
			}
			for _, p := range puts {
				if string(p) == string(r.RequestPut.Key) {
					return ErrDuplicateKey
				}
			}
			puts = append(puts, r.RequestPut.Key)
		case *etcdserverpb.RequestOp_RequestDeleteRange:
			if len(r.RequestDeleteRange.Key) == 0 {
				return ErrEmptyKey
			}
			dels = append(dels, r.RequestDeleteRange)
		case *etcdserverpb.RequestOp_RequestTxn:
			if err := checkTxn(r.RequestTxn); err != nil {
				return err
			}
		default:
			return connect.NewError(connect.CodeInvalidArgument, ErrBadCommand)
		}
	}
	for _, d := range dels {
		for _, p := range puts {
			if mvcc.InRange(p, d.Key, d.RangeEnd) {
				return ErrDuplicateKey
			}
		}
	}
	return nil
}
