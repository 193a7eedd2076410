package pd

import (
	"context"
	"encoding/json"
	"fmt"
)

// ScheduleConfig returns the schedule config in effect.
func (s *Server) ScheduleConfig(ctx context.Context) (ScheduleConfig, error) {
	unlock, err := s.view(ctx, false)
	if err != nil {
		return ScheduleConfig{}, err
	}
	defer unlock()
	return s.schedule, nil
}

// UpdateScheduleConfig merges the JSON object patch into the schedule
// config, validates and persists it. An unknown key or a bad value is an
// ErrInvalidArgument naming the key; nothing changes then.
func (s *Server) UpdateScheduleConfig(ctx context.Context, patch []byte) error {
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return err
	}
	return updateConfig(ctx, s, "schedule", keyScheduleConfig, s.schedule, &s.schedule, &s.scheduleVer, patch)
}

// updateConfig merges patch into next (a copy of the config in effect that
// shares nothing with it), validates it, persists it under key with a
// compare-and-swap on *ver and only then installs it in *cur. The caller
// holds s.mu and leads.
func updateConfig[T any, PT interface {
	*T
	Validate() error
}](ctx context.Context, s *Server, name, key string, next T, cur *T, ver *uint64, patch []byte) error {
	if err := mergeConfig(PT(&next), patch); err != nil {
		return err
	}
	if err := PT(&next).Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	val, err := json.Marshal(next)
	if err != nil {
		return err
	}
	v, err := s.putCAS(ctx, []byte(key), *ver, val)
	if err != nil {
		return err
	}
	*cur, *ver = next, v
	s.log.Info(name+" config updated", "patch", string(patch))
	return nil
}

// ReplicationConfig returns the replication config in effect.
func (s *Server) ReplicationConfig(ctx context.Context) (ReplicationConfig, error) {
	unlock, err := s.view(ctx, false)
	if err != nil {
		return ReplicationConfig{}, err
	}
	defer unlock()
	return s.replication, nil
}

// UpdateReplicationConfig merges, validates and persists a patch of the
// replication config, as UpdateScheduleConfig.
func (s *Server) UpdateReplicationConfig(ctx context.Context, patch []byte) error {
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return err
	}
	next := s.replication
	next.LocationLabels = append(StringList(nil), next.LocationLabels...)
	return updateConfig(ctx, s, "replication", keyReplicaConfig, next, &s.replication, &s.replVer, patch)
}
