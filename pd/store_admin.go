package pd

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/chainfire/client"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

// StoreWeight is a store's leader and region weight (POST
// /store/{id}/weight): its scores are divided by them, so a store of
// weight 2 gets twice the leaders or data.
type StoreWeight struct {
	Leader float64 `json:"leader"`
	Region float64 `json:"region"`
}

// SetStoreWeight persists a store's weights.
func (s *Server) SetStoreWeight(ctx context.Context, id uint64, w StoreWeight) error {
	if w.Leader <= 0 || w.Region <= 0 {
		return fmt.Errorf("%w: leader and region weights must be positive, got leader %v region %v", ErrInvalidArgument, w.Leader, w.Region)
	}
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return err
	}
	if s.stores[id] == nil {
		return fmt.Errorf("%w: store %d", ErrStoreNotFound, id)
	}
	next := maps.Clone(s.weights)
	next[id] = w
	val, err := json.Marshal(next)
	if err != nil {
		return err
	}
	ver, err := s.putCAS(ctx, []byte(keyStoreWeights), s.weightsVer, val)
	if err != nil {
		return err
	}
	s.weights, s.weightsVer = next, ver
	return nil
}

// weightOf returns the store's weights (1 and 1 when never set). Call
// with mu.
func (s *Server) weightOf(id uint64) StoreWeight {
	if w, ok := s.weights[id]; ok {
		return w
	}
	return StoreWeight{Leader: 1, Region: 1}
}

// SetStoreState moves a store to Up (cancelling an offline) or Offline
// (as DeleteStore without force). A Tombstone cannot come back.
func (s *Server) SetStoreState(ctx context.Context, id uint64, state string) error {
	switch state {
	case StateOffline:
		return s.DeleteStore(ctx, id, false)
	case StateUp:
	default:
		return fmt.Errorf("%w: state must be Up or Offline, not %q", ErrInvalidArgument, state)
	}
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return err
	}
	e := s.stores[id]
	switch {
	case e == nil:
		return fmt.Errorf("%w: store %d", ErrStoreNotFound, id)
	case e.meta.GetState() == metav1.StoreState_STORE_STATE_TOMBSTONE:
		return fmt.Errorf("%w: store %d cannot come back: start it with a new store_id and an empty data dir", ErrStoreTombstone, id)
	case e.meta.GetPhysicallyDestroyed():
		return fmt.Errorf("%w: store %d was taken offline with force (physically destroyed) and cannot come back", ErrInvalidArgument, id)
	case e.meta.GetState() == metav1.StoreState_STORE_STATE_UP_UNSPECIFIED:
		return nil
	}
	next := proto.Clone(e.meta).(*metav1.Store)
	next.State = metav1.StoreState_STORE_STATE_UP_UNSPECIFIED
	next.NodeState = metav1.NodeState_NODE_STATE_SERVING
	if err := s.writeStoreLocked(ctx, e, next); err != nil {
		return err
	}
	s.log.Info("store set Up (offline cancelled)", "store_id", id)
	return nil
}

// RemoveTombstones deletes the records of Tombstone stores (TiKV's
// remove-tombstone). Their IDs may then register again, as new stores.
func (s *Server) RemoveTombstones(ctx context.Context) (int, error) {
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return 0, err
	}
	n := 0
	for id, e := range s.stores {
		if e.meta.GetState() != metav1.StoreState_STORE_STATE_TOMBSTONE {
			continue
		}
		if s.regions.storeRegionCount(id) > 0 {
			continue // cannot happen: a tombstone holds no region
		}
		if _, err := s.txn(ctx, []client.SysCompare{{Key: storeKey(id), Version: e.ver}}, nil, [][]byte{storeKey(id)}, 0); err != nil {
			return n, err
		}
		delete(s.stores, id)
		n++
		s.log.Info("tombstone store removed", "store_id", id)
	}
	return n, nil
}

// StoreLimits returns every non-tombstone store's limit (steps per
// minute), keyed by store ID.
func (s *Server) StoreLimits(ctx context.Context) (map[string]StoreLimitConfig, error) {
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return nil, err
	}
	out := map[string]StoreLimitConfig{}
	for id, e := range s.stores {
		if e.meta.GetState() != metav1.StoreState_STORE_STATE_TOMBSTONE {
			out[strconv.FormatUint(id, 10)] = StoreLimitConfig(s.storeLimitLocked(id))
		}
	}
	return out, nil
}

// SetStoreLimit sets the add-peer or remove-peer rate (steps per minute)
// of one store, or of every store when id is 0; typ "" sets both. It is
// persisted in the schedule config's store-limit.
func (s *Server) SetStoreLimit(ctx context.Context, id uint64, typ string, rate float64) error {
	if rate <= 0 {
		return fmt.Errorf("%w: rate must be positive, got %v", ErrInvalidArgument, rate)
	}
	if typ != "" && typ != "add-peer" && typ != "remove-peer" {
		return fmt.Errorf("%w: type must be add-peer or remove-peer, not %q", ErrInvalidArgument, typ)
	}
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return err
	}
	ids := []uint64{id}
	if id == 0 {
		ids = slices.Collect(maps.Keys(s.stores))
	} else if s.stores[id] == nil {
		return fmt.Errorf("%w: store %d", ErrStoreNotFound, id)
	}
	next := s.schedule
	next.StoreLimit = maps.Clone(s.schedule.StoreLimit)
	if next.StoreLimit == nil {
		next.StoreLimit = map[string]StoreLimitConfig{}
	}
	for _, sid := range ids {
		l := StoreLimitConfig(s.storeLimitLocked(sid))
		if typ != "remove-peer" {
			l.AddPeer = rate
		}
		if typ != "add-peer" {
			l.RemovePeer = rate
		}
		next.StoreLimit[strconv.FormatUint(sid, 10)] = l
	}
	patch, err := json.Marshal(map[string]any{"store-limit": next.StoreLimit})
	if err != nil {
		return err
	}
	return updateConfig(ctx, s, "schedule", keyScheduleConfig, next, &s.schedule, &s.scheduleVer, patch)
}
