package pd

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// schedulerEntry is one enabled scheduler as persisted (JSON).
type schedulerEntry struct {
	Name    string `json:"name"`
	StoreID uint64 `json:"store_id,omitempty"`
}

// knownSchedulers maps the schedulers one may enable to whether they need
// a store_id. balance-leader, balance-region, evict-leader and
// grant-leader run (pd/schedule); the others are accepted and idle.
var knownSchedulers = map[string]bool{
	"balance-leader-scheduler":     false,
	"balance-region-scheduler":     false,
	"balance-hot-region-scheduler": false,
	"evict-slow-store-scheduler":   false,
	"shuffle-leader-scheduler":     false,
	"shuffle-region-scheduler":     false,
	"random-merge-scheduler":       false,
	"label-scheduler":              false,
	"evict-leader-scheduler":       true,
	"grant-leader-scheduler":       true,
}

// defaultSchedulers are TiKV PD's schedulers enabled by default.
func defaultSchedulers() []schedulerEntry {
	return []schedulerEntry{
		{Name: "balance-hot-region-scheduler"},
		{Name: "balance-leader-scheduler"},
		{Name: "balance-region-scheduler"},
		{Name: "evict-slow-store-scheduler"},
	}
}

// Schedulers returns the names of the enabled schedulers, sorted.
func (s *Server) Schedulers(ctx context.Context) ([]string, error) {
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return nil, err
	}
	return schedulerNames(s.schedulers), nil
}

// schedulerNames returns the distinct names of entries, sorted.
func schedulerNames(entries []schedulerEntry) []string {
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !slices.Contains(names, e.Name) {
			names = append(names, e.Name)
		}
	}
	slices.Sort(names)
	return names
}

// AddScheduler enables a scheduler; evict-leader and grant-leader need the
// ID of an existing store.
func (s *Server) AddScheduler(ctx context.Context, name string, storeID uint64) error {
	needStore, ok := knownSchedulers[name]
	if !ok {
		return fmt.Errorf("%w: unknown scheduler %q", ErrInvalidArgument, name)
	}
	if needStore && storeID == 0 {
		return fmt.Errorf("%w: scheduler %q needs a store_id", ErrInvalidArgument, name)
	}
	if !needStore && storeID != 0 {
		return fmt.Errorf("%w: scheduler %q takes no store_id", ErrInvalidArgument, name)
	}
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return err
	}
	if needStore && s.stores[storeID] == nil {
		return fmt.Errorf("%w: store %d", ErrStoreNotFound, storeID)
	}
	e := schedulerEntry{Name: name, StoreID: storeID}
	if slices.Contains(s.schedulers, e) {
		return fmt.Errorf("%w: scheduler %q is already enabled", ErrInvalidArgument, name)
	}
	return s.writeSchedulersLocked(ctx, append(slices.Clone(s.schedulers), e))
}

// RemoveScheduler disables a scheduler: every instance of the name, or,
// as TiKV's "evict-leader-scheduler-4", the instance for one store.
func (s *Server) RemoveScheduler(ctx context.Context, name string) error {
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return err
	}
	var store uint64
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if id, err := strconv.ParseUint(name[i+1:], 10, 64); err == nil && knownSchedulers[name[:i]] {
			name, store = name[:i], id
		}
	}
	next := slices.DeleteFunc(slices.Clone(s.schedulers), func(e schedulerEntry) bool {
		return e.Name == name && (store == 0 || e.StoreID == store)
	})
	if len(next) == len(s.schedulers) {
		return fmt.Errorf("%w: scheduler %q is not enabled", ErrSchedulerNotFound, name)
	}
	return s.writeSchedulersLocked(ctx, next)
}

func (s *Server) writeSchedulersLocked(ctx context.Context, next []schedulerEntry) error {
	if next == nil {
		next = []schedulerEntry{}
	}
	val, err := json.Marshal(next)
	if err != nil {
		return err
	}
	ver, err := s.putCAS(ctx, []byte(keySchedulers), s.schedVer, val)
	if err != nil {
		return err
	}
	s.schedulers, s.schedVer = next, ver
	return nil
}

// PauseScheduler pauses an enabled scheduler for d (TiKV's POST
// /schedulers/{name} {"delay": s}); d 0 resumes it. Pauses are leader
// memory.
func (s *Server) PauseScheduler(ctx context.Context, name string, d time.Duration) error {
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return err
	}
	if !slices.ContainsFunc(s.schedulers, func(e schedulerEntry) bool { return e.Name == name }) {
		return fmt.Errorf("%w: scheduler %q is not enabled", ErrSchedulerNotFound, name)
	}
	s.co.Pause(name, d)
	return nil
}

// PausedSchedulers returns the enabled schedulers that are paused now.
func (s *Server) PausedSchedulers(ctx context.Context) ([]string, error) {
	names, err := s.Schedulers(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(names, func(n string) bool { return s.co.PausedUntil(n).IsZero() }), nil
}
