package chainfire

import (
	"context"

	"github.com/centra-cloud/centra/chainfire/client"
	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// The Server is the metadata shard's system keyspace for the placement
// driver (see client.SystemKV): reads are linearizable, writes are
// compare-and-swap raft commands.
var _ client.SystemKV = (*Server)(nil)

func toClientKV(kv mvcc.SysKV) client.SysKV {
	return client.SysKV{Key: kv.Key, Value: kv.Value, Version: kv.Version}
}

// Get implements client.SystemKV.
func (s *Server) Get(ctx context.Context, key []byte) (client.SysKV, error) {
	out, err := s.read(ctx, sysGetQuery{key: key}, false)
	if err != nil {
		return client.SysKV{}, err
	}
	return toClientKV(out.(mvcc.SysKV)), nil
}

// List implements client.SystemKV.
func (s *Server) List(ctx context.Context, prefix []byte) ([]client.SysKV, error) {
	out, err := s.read(ctx, sysListQuery{prefix: prefix}, false)
	if err != nil {
		return nil, err
	}
	kvs := out.([]mvcc.SysKV)
	res := make([]client.SysKV, len(kvs))
	for i, kv := range kvs {
		res[i] = toClientKV(kv)
	}
	return res, nil
}

// Txn implements client.SystemKV.
func (s *Server) Txn(ctx context.Context, cmps []client.SysCompare, puts []client.SysKV, deletes [][]byte) (bool, error) {
	t := &raftcmdv1.SysTxn{Deletes: deletes}
	for _, c := range cmps {
		t.Compares = append(t.Compares, &raftcmdv1.SysCompare{Key: c.Key, Version: c.Version})
	}
	for _, p := range puts {
		t.Puts = append(t.Puts, &raftcmdv1.SysKeyValue{Key: p.Key, Value: p.Value})
	}
	m, err := s.proposeResult(ctx, &raftcmdv1.Command{Cmd: &raftcmdv1.Command_SysTxn{SysTxn: t}})
	if err != nil {
		return false, err
	}
	res, err := resultAs[raftcmdv1.SysTxnResult](m)
	if err != nil {
		return false, err
	}
	return res.Succeeded, nil
}

// IsLeader implements client.SystemKV.
func (s *Server) IsLeader() bool {
	_, ok := s.LeaderTerm()
	return ok
}

// LeaderTerm implements client.SystemKV.
func (s *Server) LeaderTerm() (uint64, bool) {
	leader, term, ok := s.cfg.Raft.Leader(raftnode.MetadataShardID)
	return term, ok && leader == s.cfg.ReplicaID
}

// LeaderURL implements client.SystemKV.
func (s *Server) LeaderURL(ctx context.Context) (string, error) { return s.leaderURL(ctx) }
