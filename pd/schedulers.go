package pd

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// schedulerEntry is one enabled scheduler as persisted (JSON).
type schedulerEntry struct {
	Name    string `json:"name"`
	StoreID uint64 `json:"store_id,omitempty"`
}

// knownSchedulers maps the schedulers one may enable to whether they need
// a store_id. None runs yet: the list is recorded for the scheduling work.
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lead(ctx); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(s.schedulers))
	for _, e := range s.schedulers {
		if !slices.Contains(names, e.Name) {
			names = append(names, e.Name)
		}
	}
	slices.Sort(names)
	return names, nil
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
	s.mu.Lock()
	defer s.mu.Unlock()
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

// RemoveScheduler disables a scheduler (every instance of the name).
func (s *Server) RemoveScheduler(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lead(ctx); err != nil {
		return err
	}
	next := slices.DeleteFunc(slices.Clone(s.schedulers), func(e schedulerEntry) bool { return e.Name == name })
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
