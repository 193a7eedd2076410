//go:build e2e && faults

package faults

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// pdRegion is what the fault suite reads of PD's region JSON (GET
// /pd/api/v1/regions, region/id/{id}).
type pdRegion struct {
	ID uint64 `json:"id"`
	// StartKey and EndKey are hex ("" is the key space's start or end).
	StartKey string `json:"start_key"`
	EndKey   string `json:"end_key"`
	Epoch    *struct {
		ConfVer uint64 `json:"conf_ver"`
		Version uint64 `json:"version"`
	} `json:"epoch"`
	Peers           []pdPeer `json:"peers"`
	Leader          *pdPeer  `json:"leader"`
	ApproximateKeys int64    `json:"approximate_keys"`
}

type pdPeer struct {
	ID        uint64 `json:"id"`
	StoreID   uint64 `json:"store_id"`
	IsLearner bool   `json:"is_learner"`
}

func (r pdRegion) version() uint64 {
	if r.Epoch == nil {
		return 0
	}
	return r.Epoch.Version
}

// stores returns the stores of r's peers, sorted, and whether one is a
// learner.
func (r pdRegion) stores() ([]uint64, bool) {
	var out []uint64
	learner := false
	for _, p := range r.Peers {
		out = append(out, p.StoreID)
		learner = learner || p.IsLearner
	}
	slices.Sort(out)
	return out, learner
}

func (r pdRegion) String() string {
	stores, _ := r.stores()
	leader := uint64(0)
	if r.Leader != nil {
		leader = r.Leader.StoreID
	}
	return fmt.Sprintf("region %d (version %d, peers on stores %v, leader on store %d)", r.ID, r.version(), stores, leader)
}

// pdRegions lists PD's regions, sorted by ID.
func pdRegions(ctx context.Context, cp *framework.Node) ([]pdRegion, error) {
	var l struct {
		Regions []pdRegion `json:"regions"`
	}
	if err := cp.PDGetJSON(ctx, "/regions", &l); err != nil {
		return nil, err
	}
	slices.SortFunc(l.Regions, func(a, b pdRegion) int { return cmp.Compare(a.ID, b.ID) })
	return l.Regions, nil
}

// coverGap is an error when rs (PD's regions) do not tile the key space
// from start to end: PD learns a region born of a split only from its
// leader's first heartbeat, and until then the child's keys are in no
// region PD lists.
func coverGap(rs []pdRegion) error {
	byStart := map[string]pdRegion{}
	for _, r := range rs {
		byStart[r.StartKey] = r
	}
	key, n := "", 0
	for ; n < len(rs); n++ {
		r, ok := byStart[key]
		if !ok {
			return fmt.Errorf("PD lists no region starting at key %q (regions: %v)", key, rs)
		}
		if key = r.EndKey; key == "" {
			break
		}
	}
	if n+1 != len(rs) || key != "" {
		return fmt.Errorf("PD's regions overlap or leave a gap (regions: %v)", rs)
	}
	return nil
}

// disableBalance deletes PD's balance schedulers, so that only the fault
// schedule's admin operators move replicas and leaders (a seed replays
// the same operators).
func disableBalance(ctx context.Context, cp *framework.Node) error {
	for _, s := range []string{"balance-region-scheduler", "balance-leader-scheduler"} {
		code, body, err := cp.Do(ctx, http.MethodDelete, framework.PDPrefix+"/schedulers/"+s, "")
		if err != nil {
			return err
		}
		if code != http.StatusOK && code != http.StatusNotFound {
			return fmt.Errorf("DELETE /schedulers/%s: status %d: %s", s, code, strings.TrimSpace(body))
		}
	}
	return nil
}

// ledRegions lists PD's regions once PD knows a leader for each (it
// learns them from region heartbeats: a region just split or whose
// leader just moved may have none for a moment).
func ledRegions(ctx context.Context, cp *framework.Node) ([]pdRegion, error) {
	var rs []pdRegion
	var listErr error // ends the wait: only a missing leader is waited out
	err := framework.WaitForCtx(ctx, func() error {
		rs, listErr = pdRegions(ctx, cp)
		if listErr != nil || !slices.ContainsFunc(rs, func(r pdRegion) bool { return r.Leader == nil || r.Leader.StoreID == 0 }) {
			return nil
		}
		return fmt.Errorf("PD knows no leader of some region (regions: %v)", rs)
	})
	if listErr != nil {
		return nil, listErr
	}
	return rs, err
}

// leaderStore returns the index (into stores) of the store leading the
// most regions, by PD.
func leaderStore(ctx context.Context, cp *framework.Node, stores []*framework.Node) (int, error) {
	rs, err := ledRegions(ctx, cp)
	if err != nil {
		return 0, err
	}
	leads := make([]int, len(stores))
	for _, r := range rs {
		for i, s := range stores {
			if r.Leader.StoreID == s.StoreID() {
				leads[i]++
			}
		}
	}
	best := 0
	for i, n := range leads {
		if n > leads[best] {
			best = i
		}
	}
	return best, nil
}

// regionOpTimeout bounds an admin operator from its POST until PD shows
// its effect. Faults come one at a time, so the cluster is whole: an
// operator that does not finish in this time is unavailability to look
// into (a run error naming the seed), not a fault.
const regionOpTimeout = 40 * time.Second

// regionOp runs the admin operator f (split-region, move-replica,
// transfer-region-leader; split-isolated and move-isolated are the first
// two) through cp's PD HTTP API on a region picked from f, runs during
// (if not nil: the fault's hold) and waits until PD's view of the region
// shows the operator done.
func (nm *nemesis) regionOp(ctx context.Context, cp *framework.Node, f fault, during func() error) error {
	rs, err := ledRegions(ctx, cp)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		return fmt.Errorf("PD lists no region")
	}
	// The picks depend only on the fault (and PD's view), so a seed
	// replays them as far as the cluster's state allows.
	rnd := rand.New(rand.NewPCG(uint64(f.At), uint64(f.Node)))
	r := rs[rnd.IntN(len(rs))]
	var op string
	var done func(pdRegion) bool
	kind := f.Kind
	switch kind {
	case splitIsolated:
		kind = splitRegion
	case moveIsolated:
		kind = moveReplica
	}
	switch kind {
	case splitRegion:
		// The region with the most keys: halving needs two.
		for _, c := range rs {
			if c.ApproximateKeys > r.ApproximateKeys {
				r = c
			}
		}
		if r.ApproximateKeys < 2 {
			nm.t.Logf("split-region: no region holds two keys (by PD): nothing to split")
			nm.nothingToSplit++
			return runDuring(during)
		}
		op = fmt.Sprintf(`{"name":"split-region","region_id":%d,"policy":"scan"}`, r.ID)
		done = func(c pdRegion) bool { return c.version() > r.version() }
	case moveReplica:
		have, _ := r.stores()
		var free []uint64
		for _, s := range nm.targets {
			if !slices.Contains(have, s.StoreID()) {
				free = append(free, s.StoreID())
			}
		}
		if len(free) == 0 {
			return fmt.Errorf("move-replica: every store holds a peer of %v; the run needs a spare store", r)
		}
		to := free[rnd.IntN(len(free))]
		from := have[rnd.IntN(len(have))]
		want := append(slices.DeleteFunc(slices.Clone(have), func(s uint64) bool { return s == from }), to)
		slices.Sort(want)
		if rnd.IntN(2) == 0 {
			op = fmt.Sprintf(`{"name":"transfer-peer","region_id":%d,"from_store_id":%d,"to_store_id":%d}`, r.ID, from, to)
		} else {
			ids := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(want)), ","), "[]")
			op = fmt.Sprintf(`{"name":"transfer-region","region_id":%d,"to_store_ids":[%s]}`, r.ID, ids)
		}
		done = func(c pdRegion) bool {
			got, learner := c.stores()
			return !learner && slices.Equal(got, want)
		}
	case transferRegionLead:
		var voters []uint64
		for _, p := range r.Peers {
			if !p.IsLearner && p.StoreID != r.Leader.StoreID {
				voters = append(voters, p.StoreID)
			}
		}
		if len(voters) == 0 {
			return fmt.Errorf("transfer-region-leader: %v has no other voter", r)
		}
		to := voters[rnd.IntN(len(voters))]
		op = fmt.Sprintf(`{"name":"transfer-leader","region_id":%d,"to_store_id":%d}`, r.ID, to)
		done = func(c pdRegion) bool { return c.Leader != nil && c.Leader.StoreID == to }
	}
	nm.t.Logf("operator on %v: %s", r, op)
	code, body, err := cp.Do(ctx, http.MethodPost, framework.PDPrefix+"/operators", op)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("POST /operators %s: status %d: %s", op, code, strings.TrimSpace(body))
	}
	if err := runDuring(during); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, regionOpTimeout)
	defer cancel()
	var last pdRegion
	err = framework.WaitForCtx(wctx, func() error {
		if err := cp.PDGetJSON(wctx, fmt.Sprintf("/region/id/%d", r.ID), &last); err != nil || !done(last) {
			return errors.New("operator not done")
		}
		return nil
	})
	if err != nil {
		// Cancel it, so that the next operator on the region is not
		// refused; the error names the seed.
		_, _, _ = cp.Do(ctx, http.MethodDelete, fmt.Sprintf("%s/operators/%d", framework.PDPrefix, r.ID), "")
		return fmt.Errorf("operator %s not done after %v: %v", op, regionOpTimeout, last)
	}
	nm.t.Logf("operator done: %v", last)
	return nil
}

func runDuring(during func() error) error {
	if during == nil {
		return nil
	}
	return during()
}
