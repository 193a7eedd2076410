package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// failLogEvery bounds how often one failure (source and reason) is
// logged: reasons name stores and limits, not regions, so a dead store
// behind a thousand regions logs one line a minute, not a thousand.
const failLogEvery = time.Minute

// Options configure a Coordinator.
type Options struct {
	Logger   *slog.Logger
	Now      func() time.Time
	Registry prometheus.Registerer
}

// Coordinator runs the patrol: the replica checker over every region and
// the enabled schedulers, feeding the operator controller. The PD leader
// calls Patrol periodically and Controller().Dispatch on each region
// heartbeat.
type Coordinator struct {
	ctrl *Controller
	log  *slog.Logger
	now  func() time.Time
	m    *metrics

	mu        sync.Mutex
	paused    map[string]time.Time // scheduler name -> paused until
	unstarted map[uint64]time.Time // peer ID -> first seen unstarted
	failed    map[string]time.Time // failure key -> last logged
	last      *view                // the last patrol's view, for metrics
}

// New returns a Coordinator and registers its metrics.
func New(o Options) (*Coordinator, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	co := &Coordinator{log: o.Logger, now: o.Now, paused: map[string]time.Time{}, unstarted: map[uint64]time.Time{}, failed: map[string]time.Time{}}
	m, err := newMetrics(o.Registry, co)
	if err != nil {
		return nil, err
	}
	co.m = m
	co.ctrl = newController(o.Now, m)
	return co, nil
}

// Controller returns the operator controller.
func (co *Coordinator) Controller() *Controller { return co.ctrl }

// Pause pauses the scheduler for d; d <= 0 resumes it.
func (co *Coordinator) Pause(name string, d time.Duration) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if d <= 0 {
		delete(co.paused, name)
		return
	}
	co.paused[name] = co.now().Add(d)
}

// PausedUntil returns until when the scheduler is paused (zero: running).
func (co *Coordinator) PausedUntil(name string) time.Time {
	co.mu.Lock()
	defer co.mu.Unlock()
	if t, ok := co.paused[name]; ok && co.now().Before(t) {
		return t
	}
	return time.Time{}
}

// Reset forgets everything the leader keeps in memory: operators (as
// CANCELED), pauses, unstarted-peer clocks. Call when leadership is lost.
func (co *Coordinator) Reset(reason string) {
	co.ctrl.Clear(reason)
	co.mu.Lock()
	defer co.mu.Unlock()
	co.paused = map[string]time.Time{}
	co.unstarted = map[uint64]time.Time{}
	co.failed = map[string]time.Time{}
	co.last = nil
}

// Patrol runs one round: advance and time out operators, run the replica
// checker on every region without an operator, then each enabled,
// unpaused scheduler.
func (co *Coordinator) Patrol(ctx context.Context, cl Cluster) {
	v := newView(cl, co.ctrl)
	now := co.now()
	co.ctrl.CheckTimeouts()
	for _, r := range v.regions {
		co.ctrl.Progress(r)
	}
	co.trackUnstarted(v, now)
	defer func() {
		co.mu.Lock()
		co.last = v
		co.mu.Unlock()
	}()
	if v.cfg.HaltScheduling {
		return
	}
	alloc := func() (uint64, error) { return cl.AllocID(ctx) }
	co.checkReplicas(v, alloc, now)
	for _, sp := range v.cfg.Schedulers {
		name := sp.Name
		run := schedulers[name]
		if run == nil {
			continue // listed, idle
		}
		if !co.PausedUntil(name).IsZero() {
			co.m.schedulerRun(name, "paused")
			continue
		}
		added := 0
		sc := &schedContext{v: v, alloc: alloc, submit: func(op *Operator) error {
			if err := co.ctrl.Add(op, &v.cfg); err != nil {
				return err
			}
			v.apply(op)
			added++
			return nil
		}}
		why := run(sc, sp)
		switch {
		case why != "":
			co.m.schedulerRun(name, "failed")
			co.fail(name, 0, why)
		case added > 0:
			co.m.schedulerRun(name, "scheduled")
		default:
			co.m.schedulerRun(name, "balanced")
		}
	}
}

// checkReplicas runs the replica checker over the regions without a
// repair operator, while the replica limit leaves room. A balance
// operator does not shield its region: a repair replaces it (a move stuck
// behind a dead voter must not keep the region one replica short).
func (co *Coordinator) checkReplicas(v *view, alloc func() (uint64, error), now time.Time) {
	rc := &replicaChecker{v: v, alloc: alloc, now: now, unstartedSince: func(id uint64) time.Time {
		co.mu.Lock()
		defer co.mu.Unlock()
		return co.unstarted[id]
	}}
	for _, r := range v.regions {
		if co.ctrl.HasAtLeast(r.ID(), PriorityHigh) {
			continue
		}
		if co.ctrl.KindRoom(replicaKind, &v.cfg) == 0 {
			co.fail("replica-checker", 0, fmt.Sprintf("replica-schedule-limit %d reached", v.cfg.ReplicaScheduleLimit))
			return
		}
		busy := co.ctrl.Has(r.ID())
		op, why := rc.check(r, busy)
		if why != "" {
			co.fail("replica-checker", r.ID(), why)
		}
		if op == nil {
			continue
		}
		if err := co.ctrl.Add(op, &v.cfg); err != nil {
			if !errors.Is(err, ErrRegionBusy) {
				co.fail("replica-checker", r.ID(), err.Error())
			}
			continue
		}
		v.apply(op)
	}
}

// trackUnstarted starts the clock of each newly unstarted peer and stops
// it for peers that started (or left).
func (co *Coordinator) trackUnstarted(v *view, now time.Time) {
	seen := map[uint64]bool{}
	co.mu.Lock()
	defer co.mu.Unlock()
	for _, r := range v.regions {
		for _, p := range r.Unstarted {
			seen[p.GetId()] = true
			if _, ok := co.unstarted[p.GetId()]; !ok {
				co.unstarted[p.GetId()] = now
			}
		}
	}
	for id := range co.unstarted {
		if !seen[id] {
			delete(co.unstarted, id)
		}
	}
}

// fail logs, at most once a minute per source and reason, that an
// operator could not be scheduled (the runbook's words); regionID (0:
// none) is the region that hit it this time.
func (co *Coordinator) fail(source string, regionID uint64, reason string) {
	key := source + "/" + reason
	now := co.now()
	co.mu.Lock()
	last, ok := co.failed[key]
	if ok && now.Sub(last) < failLogEvery {
		co.mu.Unlock()
		return
	}
	co.failed[key] = now
	for k, t := range co.failed {
		if now.Sub(t) >= failLogEvery {
			delete(co.failed, k)
		}
	}
	co.mu.Unlock()
	args := []any{"scheduler", source, "reason", reason}
	if regionID != 0 {
		args = append(args, "region_id", regionID)
	}
	co.log.Warn("failed to schedule operator", args...)
}
