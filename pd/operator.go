package pd

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	"github.com/centra-cloud/centra/pd/schedule"
)

// OperatorRequest is the body of POST /pd/api/v1/operators (TiKV PD's
// shapes, by name).
type OperatorRequest struct {
	Name           string   `json:"name"`
	RegionID       uint64   `json:"region_id"`
	StoreID        uint64   `json:"store_id"`
	ToStoreID      uint64   `json:"to_store_id"`
	FromStoreID    uint64   `json:"from_store_id"`
	ToStoreIDs     []uint64 `json:"to_store_ids"`
	SourceRegionID uint64   `json:"source_region_id"`
	TargetRegionID uint64   `json:"target_region_id"`
	Policy         string   `json:"policy"`
	Keys           []string `json:"keys"`
}

// AddOperator builds an admin operator against the current region and
// stores and hands it to the operator controller, where it replaces any
// scheduler-made operator of the region and skips the schedule limits.
// The region leader runs its steps from its next heartbeats.
func (s *Server) AddOperator(ctx context.Context, req OperatorRequest) error {
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return err
	}
	op, err := s.buildOperator(ctx, req)
	if err != nil {
		return err
	}
	cfg := s.schedConfigLocked()
	if err := s.co.Controller().Add(op, &cfg); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	s.log.Info("admin operator created", "region_id", op.RegionID, "operator", op.String())
	return nil
}

// buildOperator turns an admin request into an operator. Call with mu.
func (s *Server) buildOperator(ctx context.Context, req OperatorRequest) (*schedule.Operator, error) {
	if req.Name == "merge-region" {
		return nil, fmt.Errorf("%w: merge-region operators cannot run: stores do not merge regions (pd/DESIGN.md, Not yet)", ErrInvalidArgument)
	}
	e := s.regions.byID[req.RegionID]
	if e == nil {
		return nil, fmt.Errorf("%w: region %d", ErrRegionNotFound, req.RegionID)
	}
	r := s.schedRegion(e)
	peerOn := func(store uint64) *metav1.Peer { return r.PeerOn(store) }
	upStore := func(id uint64) error {
		st := s.stores[id]
		if st == nil {
			return fmt.Errorf("%w: store %d", ErrStoreNotFound, id)
		}
		if name := s.stateName(st); name != StateUp {
			return fmt.Errorf("%w: store %d is %s, not Up", ErrInvalidArgument, id, name)
		}
		return nil
	}
	newPeer := func() (uint64, error) { return s.allocLocked(ctx, 1) }
	// moveTo moves the region's peers onto exactly the stores to: a
	// learner (promoted) on each store without a peer, then the removal of
	// every peer on another store.
	moveTo := func(to []uint64) ([]schedule.Step, error) {
		var steps []schedule.Step
		for _, id := range to {
			if peerOn(id) != nil {
				continue
			}
			if err := upStore(id); err != nil {
				return nil, err
			}
			pid, err := newPeer()
			if err != nil {
				return nil, err
			}
			steps = append(steps, schedule.AddLearner{ToStore: id, PeerID: pid}, schedule.PromoteLearner{ToStore: id, PeerID: pid})
		}
		for _, p := range r.Meta.GetPeers() {
			if !slices.Contains(to, p.GetStoreId()) {
				steps = append(steps, schedule.RemovePeer{FromStore: p.GetStoreId(), PeerID: p.GetId()})
			}
		}
		return steps, nil
	}
	kind := schedule.KindAdmin | schedule.KindRegion
	var brief string
	var steps []schedule.Step
	var err error
	switch req.Name {
	case "transfer-leader":
		p := peerOn(req.ToStoreID)
		if p == nil || p.GetRole() == metav1.PeerRole_PEER_ROLE_LEARNER {
			return nil, fmt.Errorf("%w: region %d has no voter on store %d", ErrInvalidArgument, r.ID(), req.ToStoreID)
		}
		from := r.Leader.GetStoreId()
		kind, brief = schedule.KindAdmin|schedule.KindLeader, fmt.Sprintf("transfer leader: store %d to %d", from, req.ToStoreID)
		steps = []schedule.Step{schedule.TransferLeader{FromStore: from, ToStore: req.ToStoreID}}
	case "transfer-region":
		if len(req.ToStoreIDs) == 0 {
			return nil, fmt.Errorf("%w: transfer-region needs to_store_ids", ErrInvalidArgument)
		}
		brief = fmt.Sprintf("mv peers to stores %v", req.ToStoreIDs)
		if steps, err = moveTo(req.ToStoreIDs); err != nil {
			return nil, err
		}
	case "split-region":
		key, err := splitKey(r, req)
		if err != nil {
			return nil, err
		}
		kind = schedule.KindAdmin
		steps = []schedule.Step{schedule.SplitRegion{FromVersion: r.Epoch().GetVersion(), Key: key}}
		brief = steps[0].String()
	case "scatter-region":
		to, err := s.scatterTargets(r)
		if err != nil {
			return nil, err
		}
		if steps, err = moveTo(to); err != nil {
			return nil, err
		}
		leader := to[rand.IntN(len(to))]
		steps = append(steps, schedule.TransferLeader{FromStore: r.Leader.GetStoreId(), ToStore: leader})
		brief = fmt.Sprintf("scatter peers to stores %v, leader to %d", to, leader)
	case "transfer-peer":
		from := peerOn(req.FromStoreID)
		if from == nil {
			return nil, fmt.Errorf("%w: region %d has no peer on store %d", ErrInvalidArgument, r.ID(), req.FromStoreID)
		}
		if peerOn(req.ToStoreID) != nil {
			return nil, fmt.Errorf("%w: region %d already has a peer on store %d", ErrInvalidArgument, r.ID(), req.ToStoreID)
		}
		if err := upStore(req.ToStoreID); err != nil {
			return nil, err
		}
		pid, err := newPeer()
		if err != nil {
			return nil, err
		}
		brief = fmt.Sprintf("mv peer: store [%d] to [%d]", req.FromStoreID, req.ToStoreID)
		steps = []schedule.Step{schedule.AddLearner{ToStore: req.ToStoreID, PeerID: pid}}
		if from.GetRole() != metav1.PeerRole_PEER_ROLE_LEARNER {
			steps = append(steps, schedule.PromoteLearner{ToStore: req.ToStoreID, PeerID: pid})
		}
		steps = append(steps, schedule.RemovePeer{FromStore: req.FromStoreID, PeerID: from.GetId()})
	case "add-peer", "add-learner":
		if peerOn(req.StoreID) != nil {
			return nil, fmt.Errorf("%w: region %d already has a peer on store %d", ErrInvalidArgument, r.ID(), req.StoreID)
		}
		if err := upStore(req.StoreID); err != nil {
			return nil, err
		}
		pid, err := newPeer()
		if err != nil {
			return nil, err
		}
		brief = fmt.Sprintf("add peer: store [%d]", req.StoreID)
		steps = []schedule.Step{schedule.AddLearner{ToStore: req.StoreID, PeerID: pid}}
		if req.Name == "add-peer" {
			steps = append(steps, schedule.PromoteLearner{ToStore: req.StoreID, PeerID: pid})
		}
	case "remove-peer":
		p := peerOn(req.StoreID)
		if p == nil {
			return nil, fmt.Errorf("%w: region %d has no peer on store %d", ErrInvalidArgument, r.ID(), req.StoreID)
		}
		if len(r.Meta.GetPeers()) == 1 {
			return nil, fmt.Errorf("%w: region %d has no other peer: removing it would lose the region", ErrInvalidArgument, r.ID())
		}
		brief = fmt.Sprintf("rm peer: store [%d]", req.StoreID)
		steps = []schedule.Step{schedule.RemovePeer{FromStore: req.StoreID, PeerID: p.GetId()}}
	default:
		return nil, fmt.Errorf("%w: unknown operator %q: want transfer-leader, transfer-region, transfer-peer, add-peer, add-learner, remove-peer, split-region or scatter-region", ErrInvalidArgument, req.Name)
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("%w: region %d already matches the request: nothing to do", ErrInvalidArgument, r.ID())
	}
	return schedule.NewOperator("admin-"+req.Name, brief, r, kind, schedule.PriorityAdmin, steps...), nil
}

// splitKey reads split-region's policy and keys: approximate or scan (or
// none) split where the region's data halves, usekey at the one key given
// (hex, an encoded region key as in start_key), which must lie inside the
// region.
func splitKey(r *schedule.Region, req OperatorRequest) ([]byte, error) {
	switch req.Policy {
	case "", "approximate", "scan":
		if len(req.Keys) > 0 {
			return nil, fmt.Errorf("%w: split-region policy %q takes no keys (usekey does)", ErrInvalidArgument, req.Policy)
		}
		return nil, nil
	case "usekey":
	default:
		return nil, fmt.Errorf("%w: split-region policy %q: want approximate, scan or usekey", ErrInvalidArgument, req.Policy)
	}
	if len(req.Keys) != 1 {
		return nil, fmt.Errorf("%w: split-region usekey takes exactly one key (got %d): send one operator per split", ErrInvalidArgument, len(req.Keys))
	}
	key, err := hex.DecodeString(req.Keys[0])
	if err != nil {
		return nil, fmt.Errorf("%w: split-region key %q is not hex: %v", ErrInvalidArgument, req.Keys[0], err)
	}
	start, end := r.Meta.GetStartKey(), r.Meta.GetEndKey()
	if bytes.Compare(key, start) <= 0 || (len(end) > 0 && bytes.Compare(key, end) >= 0) {
		return nil, fmt.Errorf("%w: split-region key %X is not inside region %d [%X, %X)", ErrInvalidArgument, key, r.ID(), start, end)
	}
	return key, nil
}

// scatterTargets picks, at random, as many Up stores as the region has
// voters (TiKV's scatter-region: the placement of a region made by one
// split should not depend on where its parent was). A store that is not
// Up, busy or low on space is never picked. Call with mu.
func (s *Server) scatterTargets(r *schedule.Region) ([]uint64, error) {
	n := 0
	for _, p := range r.Meta.GetPeers() {
		if p.GetRole() != metav1.PeerRole_PEER_ROLE_LEARNER {
			n++
		}
	}
	cfg := s.schedConfigLocked()
	var up []uint64
	for _, e := range s.stores {
		if st := s.schedStore(e); st.State == schedule.StateUp && !st.Busy && !st.LowOnSpace(cfg.LowSpaceRatio) {
			up = append(up, st.ID)
		}
	}
	if len(up) < n {
		return nil, fmt.Errorf("%w: region %d has %d voters and only %d stores can take one (Up, not busy, not low on space): nothing to scatter to",
			ErrInvalidArgument, r.ID(), n, len(up))
	}
	rand.Shuffle(len(up), func(i, j int) { up[i], up[j] = up[j], up[i] })
	to := up[:n]
	slices.Sort(to)
	return to, nil
}

// Operators returns the live operators by region ID.
func (s *Server) Operators(ctx context.Context) ([]schedule.View, error) {
	if err := s.leading(ctx); err != nil {
		return nil, err
	}
	return s.co.Controller().Operators(), nil
}

// OperatorRecords returns the finished operators created at or after from.
func (s *Server) OperatorRecords(ctx context.Context, from time.Time) ([]schedule.View, error) {
	if err := s.leading(ctx); err != nil {
		return nil, err
	}
	return s.co.Controller().Records(from), nil
}

// RemoveOperator cancels the region's operator.
func (s *Server) RemoveOperator(ctx context.Context, regionID uint64) error {
	if err := s.leading(ctx); err != nil {
		return err
	}
	err := s.co.Controller().Remove(regionID, "canceled by admin")
	if errors.Is(err, schedule.ErrNoOperator) {
		return fmt.Errorf("%w: region %d", ErrOperatorNotFound, regionID)
	}
	return err
}
