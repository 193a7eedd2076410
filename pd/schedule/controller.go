package schedule

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// historySize bounds the finished operators kept for /operators/records.
const historySize = 1000

// Errors of the controller.
var (
	// ErrRegionBusy: the region has an operator of the same or a higher
	// priority.
	ErrRegionBusy = errors.New("schedule: region already has an operator")
	// ErrLimit: a schedule or store limit is reached.
	ErrLimit = errors.New("schedule: limit reached")
	// ErrNoOperator: the region has no operator.
	ErrNoOperator = errors.New("schedule: no operator for the region")
)

// Controller holds the live operators, one per region, advances them from
// what regions report and hands out their current steps. It is safe for
// concurrent use: heartbeats and the patrol loop both call it.
type Controller struct {
	now func() time.Time
	m   *metrics

	mu      sync.Mutex
	nextID  uint64
	ops     map[uint64]*Operator // by region ID
	history []View               // ring of finished operators
	histAt  int
	buckets map[bucketKey]*bucket
}

type bucketKey struct {
	store uint64
	add   bool // add-peer (true) or remove-peer
}

// bucket is a token bucket of ratePerMin tokens a minute holding at most
// ratePerMin: TiKV's store limit.
type bucket struct {
	tokens float64
	at     time.Time
}

func newController(now func() time.Time, m *metrics) *Controller {
	return &Controller{now: now, m: m, ops: map[uint64]*Operator{}, buckets: map[bucketKey]*bucket{}}
}

// smallRegionCost is what an AddLearner or RemovePeer of a region of at
// most smallRegionMiB costs in store-limit tokens (a larger one costs 1):
// TiKV's small-region influence (200 of 1000), so a limit of 15 a minute
// moves 75 small regions a minute.
const smallRegionCost = 0.2

// storeDemand sums the store-limit cost of op's AddLearner and RemovePeer
// steps per store.
func storeDemand(op *Operator) map[bucketKey]float64 {
	cost := 1.0
	if op.Size <= smallRegionMiB {
		cost = smallRegionCost
	}
	d := map[bucketKey]float64{}
	for _, s := range op.Steps {
		switch s := s.(type) {
		case AddLearner:
			d[bucketKey{s.ToStore, true}] += cost
		case RemovePeer:
			d[bucketKey{s.FromStore, false}] += cost
		}
	}
	return d
}

// refill returns the bucket of k topped up to now. Call with mu.
func (c *Controller) refill(k bucketKey, cfg *Config) *bucket {
	l := cfg.storeLimit(k.store)
	rate := l.RemovePeer
	if k.add {
		rate = l.AddPeer
	}
	now := c.now()
	b := c.buckets[k]
	if b == nil {
		b = &bucket{tokens: rate, at: now}
		c.buckets[k] = b
	}
	b.tokens = min(rate, b.tokens+now.Sub(b.at).Minutes()*rate)
	b.at = now
	return b
}

// storeLimitOK reports whether the store can take n more steps of the kind
// now. Call with mu.
func (c *Controller) storeLimitOK(store uint64, add bool, n float64, cfg *Config) bool {
	return c.refill(bucketKey{store, add}, cfg).tokens+1e-9 >= n // float sums of 0.2
}

// StoreLimitAvailable reports whether the store's add-peer (add) or
// remove-peer limit can pay for one step on a region of sizeMiB.
func (c *Controller) StoreLimitAvailable(store uint64, add bool, sizeMiB uint64, cfg *Config) bool {
	cost := 1.0
	if sizeMiB <= smallRegionMiB {
		cost = smallRegionCost
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.storeLimitOK(store, add, cost, cfg)
}

// kindLimit returns the limit on live operators of kind k, or 0 if none.
func kindLimit(k Kind, cfg *Config) uint64 {
	switch {
	case k&KindReplica != 0:
		return cfg.ReplicaScheduleLimit
	case k&KindRegion != 0:
		return cfg.RegionScheduleLimit
	case k&KindLeader != 0:
		return cfg.LeaderScheduleLimit
	}
	return 0
}

// countKind counts the live operators with a kind flag of k's limit
// class. Call with mu.
func (c *Controller) countKind(k Kind) uint64 {
	var flag Kind
	switch {
	case k&KindReplica != 0:
		flag = KindReplica
	case k&KindRegion != 0:
		flag = KindRegion
	default:
		flag = KindLeader
	}
	n := uint64(0)
	for _, op := range c.ops {
		if op.Kind&flag != 0 {
			n++
		}
	}
	return n
}

// KindRoom returns how many more operators of kind k the schedule limit
// allows now.
func (c *Controller) KindRoom(k Kind, cfg *Config) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	lim, n := kindLimit(k, cfg), c.countKind(k)
	if n >= lim {
		return 0
	}
	return lim - n
}

// Add hands op to the controller. It is refused with ErrRegionBusy when
// the region has an operator of the same or a higher priority (a lower
// one is REPLACED), and with ErrLimit when the schedule limit of its kind
// or a store limit is reached (admin operators skip both).
func (c *Controller) Add(op *Operator, cfg *Config) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.ops[op.RegionID]
	if old != nil && old.Priority >= op.Priority {
		return fmt.Errorf("%w: region %d has %s", ErrRegionBusy, op.RegionID, old.Desc)
	}
	demand := storeDemand(op)
	if op.Kind&KindAdmin == 0 {
		if lim := kindLimit(op.Kind, cfg); c.countKind(op.Kind) >= lim {
			return fmt.Errorf("%w: %d %s operators running (limit %d)", ErrLimit, c.countKind(op.Kind), op.Kind, lim)
		}
		for k, n := range demand {
			if !c.storeLimitOK(k.store, k.add, n, cfg) {
				what := "remove-peer"
				if k.add {
					what = "add-peer"
				}
				return fmt.Errorf("%w: store %d %s limit exhausted", ErrLimit, k.store, what)
			}
		}
	}
	for k, n := range demand {
		c.refill(k, cfg).tokens -= n // admin operators may go negative: they borrow
	}
	if old != nil {
		c.finishLocked(old, StatusReplaced, "replaced by "+op.Desc)
	}
	c.nextID++
	op.ID = c.nextID
	op.createAt = c.now()
	op.stepStart = op.createAt
	op.status = StatusCreated
	c.ops[op.RegionID] = op
	c.m.operatorEvent(op, StatusCreated)
	return nil
}

// finishLocked ends op with status and records it. Call with mu.
func (c *Controller) finishLocked(op *Operator, st Status, reason string) {
	op.status, op.reason, op.finishAt = st, reason, c.now()
	if c.ops[op.RegionID] == op {
		delete(c.ops, op.RegionID)
	}
	v := op.view()
	if len(c.history) < historySize {
		c.history = append(c.history, v)
	} else {
		c.history[c.histAt] = v
		c.histAt = (c.histAt + 1) % historySize
	}
	c.m.operatorEvent(op, st)
}

// Remove cancels the region's operator (admin DELETE /operators/{id}).
func (c *Controller) Remove(regionID uint64, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	op := c.ops[regionID]
	if op == nil {
		return fmt.Errorf("%w: region %d", ErrNoOperator, regionID)
	}
	c.finishLocked(op, StatusCanceled, reason)
	return nil
}

// Has reports whether the region has a live operator.
func (c *Controller) Has(regionID uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops[regionID] != nil
}

// HasAtLeast reports whether the region has a live operator of priority p
// or higher.
func (c *Controller) HasAtLeast(regionID uint64, p Priority) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	op := c.ops[regionID]
	return op != nil && op.Priority >= p
}

// Operator returns the region's live operator's view.
func (c *Controller) Operator(regionID uint64) (View, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	op := c.ops[regionID]
	if op == nil {
		return View{}, false
	}
	return op.view(), true
}

// Operators returns the live operators by region ID.
func (c *Controller) Operators() []View {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]View, 0, len(c.ops))
	for _, op := range c.ops {
		out = append(out, op.view())
	}
	slices.SortFunc(out, func(a, b View) int { return compareUint(a.RegionID, b.RegionID) })
	return out
}

// Records returns the finished operators, oldest first, created at or
// after from.
func (c *Controller) Records(from time.Time) []View {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]View, 0, len(c.history))
	for i := range c.history {
		v := c.history[(c.histAt+i)%len(c.history)]
		if !v.CreateAt.Before(from) {
			out = append(out, v)
		}
	}
	return out
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Dispatch advances the region's operator with what r shows and returns
// the command the leader must run now, with the operator's ID, or nil.
// It is called for each region heartbeat; r is the heartbeat's view.
func (c *Controller) Dispatch(r *Region) (*Command, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	op := c.progressLocked(r)
	if op == nil {
		return nil, 0
	}
	st := op.Steps[op.current]
	if st.applied(r) {
		return nil, op.ID // the change is in; wait for it to finish
	}
	cmd := st.command(r)
	if cmd == nil {
		return nil, op.ID
	}
	if op.status == StatusCreated {
		op.status, op.startAt = StatusStarted, c.now()
		c.m.operatorEvent(op, StatusStarted)
	}
	return cmd, op.ID
}

// Progress advances the region's operator from r without dispatching.
func (c *Controller) Progress(r *Region) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.progressLocked(r)
}

// progressLocked skips the finished steps of r's operator and ends it when
// it succeeded, went stale or timed out; it returns the operator if it
// lives on. Call with mu.
func (c *Controller) progressLocked(r *Region) *Operator {
	op := c.ops[r.ID()]
	if op == nil {
		return nil
	}
	e := r.Epoch()
	if sp, ok := op.Steps[op.current].(SplitRegion); ok && sp.done(r) {
		c.finishLocked(op, StatusSuccess, "") // the split is always the last step
		return nil
	}
	if e.GetVersion() != op.Epoch.GetVersion() {
		c.finishLocked(op, StatusCanceled, fmt.Sprintf("region version changed from %d to %d (split or merge)", op.Epoch.GetVersion(), e.GetVersion()))
		return nil
	}
	for op.current < len(op.Steps) && op.Steps[op.current].done(r) {
		op.current++
		op.stepStart = c.now()
	}
	if op.current == len(op.Steps) {
		c.finishLocked(op, StatusSuccess, "")
		return nil
	}
	if al, ok := op.Steps[op.current].(AddLearner); ok {
		if p := r.PeerOn(al.ToStore); p != nil && p.GetId() != al.PeerID {
			c.finishLocked(op, StatusCanceled, fmt.Sprintf("store %d already holds peer %d of the region: step %d {%s} cannot apply", al.ToStore, p.GetId(), op.current, al))
			return nil
		}
	}
	if seen := op.confChangesSeen(r); e.GetConfVer() > op.Epoch.GetConfVer()+seen {
		c.finishLocked(op, StatusCanceled, fmt.Sprintf("region conf_ver %d moved past the operator's (%d + %d changes it made): membership changed under it",
			e.GetConfVer(), op.Epoch.GetConfVer(), seen))
		return nil
	}
	if c.timedOutLocked(op) {
		return nil
	}
	return op
}

// timedOutLocked ends op with TIMEOUT if its current step ran too long.
func (c *Controller) timedOutLocked(op *Operator) bool {
	st := op.Steps[op.current]
	if d := st.timeout(op.Size); c.now().Sub(op.stepStart) > d {
		c.finishLocked(op, StatusTimeout, fmt.Sprintf("step %d {%s} did not finish within %s", op.current, st, d))
		return true
	}
	return false
}

// CheckTimeouts ends every operator whose current step ran too long (for
// regions that stopped reporting).
func (c *Controller) CheckTimeouts() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, op := range c.ops {
		c.timedOutLocked(op)
	}
}

// Clear drops every live operator as CANCELED (this node stopped leading).
func (c *Controller) Clear(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, op := range c.ops {
		c.finishLocked(op, StatusCanceled, reason)
	}
	c.buckets = map[bucketKey]*bucket{}
}

// influence is the effect of the live operators' remaining steps on each
// store, which scores add to what regions show.
type influence struct {
	regionSize, regionCount, leaderSize, leaderCount float64
	sending, receiving                               int
}

// influences returns the live operators' influence per store.
func (c *Controller) influences() map[uint64]*influence {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[uint64]*influence{}
	for _, op := range c.ops {
		op.addInfluence(out)
	}
	return out
}

// addInfluence adds the effect of op's remaining steps to out.
func (o *Operator) addInfluence(out map[uint64]*influence) {
	get := func(id uint64) *influence {
		if out[id] == nil {
			out[id] = &influence{}
		}
		return out[id]
	}
	size := float64(max(o.Size, 1))
	for _, s := range o.Steps[o.current:] {
		switch s := s.(type) {
		case AddLearner:
			in := get(s.ToStore)
			in.regionSize += size
			in.regionCount++
			in.receiving++
			get(o.leaderStore).sending++
		case RemovePeer:
			in := get(s.FromStore)
			in.regionSize -= size
			in.regionCount--
		case TransferLeader:
			from, to := get(s.FromStore), get(s.ToStore)
			from.leaderCount--
			from.leaderSize -= size
			to.leaderCount++
			to.leaderSize += size
		}
	}
}
