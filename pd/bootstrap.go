package pd

import (
	"context"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/chainfire/client"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

// bootstrapRegionLocked creates the cluster's first region, the whole key
// space, once max-replicas stores are Up and no region was ever created: its
// peers go to the Up stores with the lowest IDs, each with a new peer ID.
// The stores learn of it from ScanRegions and start its replicas with every
// peer as an initial member (flaredb/DESIGN.md). The bootstrapped marker is
// written in the same transaction, so it happens once per cluster even
// across PD leaders. Call with mu.
func (s *Server) bootstrapRegionLocked(ctx context.Context) error {
	if s.bootstrapped || len(s.regions.byID) > 0 {
		s.bootstrapped = true
		return nil
	}
	got, err := s.cfg.KV.Get(ctx, []byte(keyBootstrapped))
	if err != nil {
		return err
	}
	if got.Version > 0 {
		s.bootstrapped = true
		return nil
	}
	var up []uint64
	for id, e := range s.stores {
		if s.stateName(e) == StateUp {
			up = append(up, id)
		}
	}
	n := s.replication.MaxReplicas
	if uint64(len(up)) < n {
		return nil
	}
	slices.Sort(up)
	first, err := s.allocLocked(ctx, n+1)
	if err != nil {
		return err
	}
	r := &metav1.Region{Id: first, RegionEpoch: &metav1.RegionEpoch{ConfVer: 1, Version: 1}}
	for i, storeID := range up[:n] {
		r.Peers = append(r.Peers, &metav1.Peer{Id: first + 1 + uint64(i), StoreId: storeID})
	}
	rec := &metav1.RegionRecord{Region: r}
	val, err := proto.Marshal(rec)
	if err != nil {
		return err
	}
	ver, err := s.txn(ctx,
		[]client.SysCompare{{Key: []byte(keyBootstrapped), Version: 0}, {Key: regionKey(first), Version: 0}},
		[]client.SysKV{{Key: []byte(keyBootstrapped), Value: encodeUint64(first)}, {Key: regionKey(first), Value: val}}, nil, 1)
	if err != nil {
		return err
	}
	s.regions.put(&regionEntry{rec: rec, ver: ver})
	s.bootstrapped = true
	s.log.Info("Bootstrapped the first region", "region_id", first, "stores", up[:n], "max_replicas", n)
	return nil
}

// tryBootstrapLocked runs bootstrapRegionLocked for a store that just
// registered or heartbeated; a failure is logged and retried on the next
// one, not returned to the store. Call with mu.
func (s *Server) tryBootstrapLocked(ctx context.Context) {
	if s.bootstrapped {
		return
	}
	if err := s.bootstrapRegionLocked(ctx); err != nil {
		s.log.Warn("Could not bootstrap the first region yet; retrying on the next store heartbeat", "err", err)
	}
}
