package pd

import (
	"context"
	"fmt"

	"github.com/centra-cloud/centra/chainfire/client"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

// idBatch is how many IDs the leader reserves per write of the counter.
// IDs reserved by a leader that loses leadership are skipped, never reused.
const idBatch = 1000

// maxAllocCount bounds one AllocID call.
const maxAllocCount = 1 << 20

// AllocID returns the first of count consecutive, cluster-unique IDs (for
// regions, peers, stores). IDs start at 1 and only grow, across leaders.
func (s *Server) AllocID(ctx context.Context, count uint32) (uint64, error) {
	if count == 0 {
		count = 1
	}
	if count > maxAllocCount {
		return 0, fmt.Errorf("%w: count %d exceeds %d", ErrInvalidArgument, count, maxAllocCount)
	}
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return 0, err
	}
	return s.allocLocked(ctx, uint64(count))
}

func (s *Server) allocLocked(ctx context.Context, n uint64) (uint64, error) {
	if s.idNext == 0 || s.idNext+n > s.idEnd {
		// Reserve (cur, cur+batch] by moving the persisted high-water mark.
		got, err := s.cfg.KV.Get(ctx, []byte(keyAllocID))
		if err != nil {
			return 0, err
		}
		var cur uint64
		if got.Version > 0 {
			if cur, err = decodeUint64(got.Value); err != nil {
				return 0, err
			}
		}
		batch := max(n, idBatch)
		ok, err := s.cfg.KV.Txn(ctx, []client.SysCompare{{Key: []byte(keyAllocID), Version: got.Version}, s.epochCmp()},
			[]client.SysKV{{Key: []byte(keyAllocID), Value: encodeUint64(cur + batch)}}, nil)
		if err != nil {
			return 0, err
		}
		if !ok {
			s.invalidate()
			return 0, ErrConcurrentUpdate
		}
		s.idNext, s.idEnd = cur+1, cur+batch+1
	}
	first := s.idNext
	s.idNext += n
	return first, nil
}

// AskSplit allocates the IDs for splitting region r: a new region ID and
// one new peer ID per peer, in the order of r's peers. r must be known.
func (s *Server) AskSplit(ctx context.Context, r *metav1.Region) (newRegionID uint64, newPeerIDs []uint64, err error) {
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return 0, nil, err
	}
	e := s.regions.byID[r.GetId()]
	if e == nil {
		return 0, nil, fmt.Errorf("%w: region %d (split asked before its first heartbeat?)", ErrRegionNotFound, r.GetId())
	}
	if r.GetRegionEpoch().GetVersion() < e.region().GetRegionEpoch().GetVersion() {
		return 0, nil, fmt.Errorf("%w: region %d version %d is older than the known version %d",
			ErrStaleRegion, r.GetId(), r.GetRegionEpoch().GetVersion(), e.region().GetRegionEpoch().GetVersion())
	}
	n := uint64(len(r.GetPeers())) + 1
	first, err := s.allocLocked(ctx, n)
	if err != nil {
		return 0, nil, err
	}
	for i := uint64(1); i < n; i++ {
		newPeerIDs = append(newPeerIDs, first+i)
	}
	return first, newPeerIDs, nil
}
