package pd

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

// operatorTimeout is the timeout shown for admin operators.
const operatorTimeout = 10 * time.Minute

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

// operator is an admin operator as recorded. Operators are validated and
// listed but not executed yet (that comes with scheduling): they stay in
// the leader's memory until deleted.
type operator struct {
	desc     string
	brief    string
	kind     string
	regionID uint64
	epoch    *metav1.RegionEpoch
	steps    []string
	createAt time.Time
}

// String is TiKV PD's operator format.
func (o *operator) String() string {
	steps := make([]string, len(o.steps))
	for i, st := range o.steps {
		steps[i] = fmt.Sprintf("%d:{%s}", i, st)
	}
	return fmt.Sprintf("%s {%s} (kind:%s, region:%d(%d, %d), createAt:%s, startAt:%s, currentStep:0, size:0, steps:[%s], timeout:[%s])",
		o.desc, o.brief, o.kind, o.regionID, o.epoch.GetVersion(), o.epoch.GetConfVer(),
		o.createAt.Format("2006-01-02 15:04:05.999999999 -0700 MST"), time.Time{}.Format("2006-01-02 15:04:05 -0700 MST"),
		strings.Join(steps, ", "), operatorTimeout)
}

// OperatorView is the ?object form of an operator.
type OperatorView struct {
	Desc        string              `json:"desc"`
	Brief       string              `json:"brief"`
	RegionID    uint64              `json:"region_id"`
	RegionEpoch *metav1.RegionEpoch `json:"region_epoch"`
	Kind        string              `json:"kind"`
	Timeout     string              `json:"timeout"`
	Status      string              `json:"status"`
}

func (o *operator) view() OperatorView {
	return OperatorView{Desc: o.desc, Brief: o.brief, RegionID: o.regionID, RegionEpoch: o.epoch,
		Kind: o.kind, Timeout: operatorTimeout.String(), Status: "CREATED"}
}

// AddOperator validates an admin operator against the current regions and
// stores and records it (one per region). It is not executed yet.
func (s *Server) AddOperator(ctx context.Context, req OperatorRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lead(ctx); err != nil {
		return err
	}
	op, err := s.buildOperator(req)
	if err != nil {
		return err
	}
	if old := s.operators[op.regionID]; old != nil {
		return fmt.Errorf("%w: region %d already has an operator: %s", ErrInvalidArgument, op.regionID, old.desc)
	}
	op.createAt = s.now()
	s.operators[op.regionID] = op
	return nil
}

func (s *Server) buildOperator(req OperatorRequest) (*operator, error) {
	regionID := req.RegionID
	if req.Name == "merge-region" {
		regionID = req.SourceRegionID
	}
	e := s.regions.byID[regionID]
	if e == nil {
		return nil, fmt.Errorf("%w: region %d", ErrRegionNotFound, regionID)
	}
	r := e.region()
	op := &operator{desc: "admin-" + req.Name, kind: "admin", regionID: regionID, epoch: r.GetRegionEpoch()}
	hasPeer := func(store uint64) bool {
		return slices.ContainsFunc(r.GetPeers(), func(p *metav1.Peer) bool { return p.GetStoreId() == store })
	}
	upStore := func(id uint64) error {
		st := s.stores[id]
		if st == nil {
			return fmt.Errorf("%w: store %d", ErrStoreNotFound, id)
		}
		if st.meta.GetState() != metav1.StoreState_STORE_STATE_UP_UNSPECIFIED {
			return fmt.Errorf("%w: store %d is %s", ErrInvalidArgument, id, s.stateName(st))
		}
		return nil
	}
	switch req.Name {
	case "transfer-leader":
		if !hasPeer(req.ToStoreID) {
			return nil, fmt.Errorf("%w: region %d has no peer on store %d", ErrInvalidArgument, regionID, req.ToStoreID)
		}
		op.kind, op.brief = "admin,leader", fmt.Sprintf("transfer leader: store %d to %d", e.rec.GetLeader().GetStoreId(), req.ToStoreID)
		op.steps = []string{fmt.Sprintf("transfer leader from store %d to store %d", e.rec.GetLeader().GetStoreId(), req.ToStoreID)}
	case "transfer-region":
		if len(req.ToStoreIDs) == 0 {
			return nil, fmt.Errorf("%w: transfer-region needs to_store_ids", ErrInvalidArgument)
		}
		for _, id := range req.ToStoreIDs {
			if err := upStore(id); err != nil {
				return nil, err
			}
		}
		op.kind, op.brief = "admin,region", fmt.Sprintf("mv peers to stores %v", req.ToStoreIDs)
		for _, id := range req.ToStoreIDs {
			if !hasPeer(id) {
				op.steps = append(op.steps, fmt.Sprintf("add learner peer on store %d", id))
			}
		}
	case "transfer-peer":
		if !hasPeer(req.FromStoreID) {
			return nil, fmt.Errorf("%w: region %d has no peer on store %d", ErrInvalidArgument, regionID, req.FromStoreID)
		}
		if hasPeer(req.ToStoreID) {
			return nil, fmt.Errorf("%w: region %d already has a peer on store %d", ErrInvalidArgument, regionID, req.ToStoreID)
		}
		if err := upStore(req.ToStoreID); err != nil {
			return nil, err
		}
		op.kind, op.brief = "admin,region", fmt.Sprintf("mv peer: store [%d] to [%d]", req.FromStoreID, req.ToStoreID)
		op.steps = []string{fmt.Sprintf("add learner peer on store %d", req.ToStoreID),
			fmt.Sprintf("promote learner peer on store %d to voter", req.ToStoreID),
			fmt.Sprintf("remove peer on store %d", req.FromStoreID)}
	case "add-peer", "add-learner":
		if hasPeer(req.StoreID) {
			return nil, fmt.Errorf("%w: region %d already has a peer on store %d", ErrInvalidArgument, regionID, req.StoreID)
		}
		if err := upStore(req.StoreID); err != nil {
			return nil, err
		}
		op.kind, op.brief = "admin,region", fmt.Sprintf("add peer: store [%d]", req.StoreID)
		op.steps = []string{fmt.Sprintf("add learner peer on store %d", req.StoreID)}
		if req.Name == "add-peer" {
			op.steps = append(op.steps, fmt.Sprintf("promote learner peer on store %d to voter", req.StoreID))
		}
	case "remove-peer":
		if !hasPeer(req.StoreID) {
			return nil, fmt.Errorf("%w: region %d has no peer on store %d", ErrInvalidArgument, regionID, req.StoreID)
		}
		op.kind, op.brief = "admin,region", fmt.Sprintf("rm peer: store [%d]", req.StoreID)
		op.steps = []string{fmt.Sprintf("remove peer on store %d", req.StoreID)}
	case "merge-region":
		t := s.regions.byID[req.TargetRegionID]
		if t == nil {
			return nil, fmt.Errorf("%w: region %d", ErrRegionNotFound, req.TargetRegionID)
		}
		if string(r.GetEndKey()) != string(t.region().GetStartKey()) && string(t.region().GetEndKey()) != string(r.GetStartKey()) {
			return nil, fmt.Errorf("%w: regions %d and %d are not adjacent", ErrInvalidArgument, regionID, req.TargetRegionID)
		}
		op.kind, op.brief = "admin,merge", fmt.Sprintf("merge: region %d to %d", regionID, req.TargetRegionID)
		op.steps = []string{fmt.Sprintf("merge region %d into region %d", regionID, req.TargetRegionID)}
	case "split-region":
		switch req.Policy {
		case "scan", "approximate":
		case "usekey":
			if len(req.Keys) == 0 {
				return nil, fmt.Errorf("%w: split-region with policy usekey needs keys", ErrInvalidArgument)
			}
		default:
			return nil, fmt.Errorf("%w: split-region policy must be scan, approximate or usekey, not %q", ErrInvalidArgument, req.Policy)
		}
		op.kind, op.brief = "admin,split", fmt.Sprintf("split: region %d use policy %s", regionID, strings.ToUpper(req.Policy))
		op.steps = []string{fmt.Sprintf("split region with policy %s", strings.ToUpper(req.Policy))}
	case "scatter-region":
		op.kind, op.brief = "admin,region", "scatter-region"
	default:
		return nil, fmt.Errorf("%w: unknown operator %q", ErrInvalidArgument, req.Name)
	}
	return op, nil
}

// operatorList returns the recorded operators by region ID.
func (s *Server) operatorList(ctx context.Context) ([]*operator, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lead(ctx); err != nil {
		return nil, err
	}
	out := make([]*operator, 0, len(s.operators))
	for _, o := range s.operators {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *operator) int { return cmp.Compare(a.regionID, b.regionID) })
	return out, nil
}

// RemoveOperator drops the region's operator.
func (s *Server) RemoveOperator(ctx context.Context, regionID uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lead(ctx); err != nil {
		return err
	}
	if s.operators[regionID] == nil {
		return fmt.Errorf("%w: region %d", ErrOperatorNotFound, regionID)
	}
	delete(s.operators, regionID)
	return nil
}
