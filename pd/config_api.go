package pd

import (
	"context"
	"encoding/json"
	"fmt"
)

// ScheduleConfig returns the schedule config in effect.
func (s *Server) ScheduleConfig(ctx context.Context) (ScheduleConfig, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lead(ctx); err != nil {
		return ScheduleConfig{}, err
	}
	return s.schedule, nil
}

// UpdateScheduleConfig merges the JSON object patch into the schedule
// config, validates and persists it. An unknown key or a bad value is an
// ErrInvalidArgument naming the key; nothing changes then.
func (s *Server) UpdateScheduleConfig(ctx context.Context, patch []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lead(ctx); err != nil {
		return err
	}
	next := s.schedule
	if err := mergeConfig(&next, patch); err != nil {
		return err
	}
	if err := next.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	val, err := json.Marshal(next)
	if err != nil {
		return err
	}
	ver, err := s.putCAS(ctx, []byte(keyScheduleConfig), s.scheduleVer, val)
	if err != nil {
		return err
	}
	s.schedule, s.scheduleVer = next, ver
	s.log.Info("schedule config updated", "patch", string(patch))
	return nil
}

// ReplicationConfig returns the replication config in effect.
func (s *Server) ReplicationConfig(ctx context.Context) (ReplicationConfig, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lead(ctx); err != nil {
		return ReplicationConfig{}, err
	}
	return s.replication, nil
}

// UpdateReplicationConfig merges, validates and persists a patch of the
// replication config, as UpdateScheduleConfig.
func (s *Server) UpdateReplicationConfig(ctx context.Context, patch []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lead(ctx); err != nil {
		return err
	}
	next := s.replication
	next.LocationLabels = append(StringList(nil), next.LocationLabels...)
	if err := mergeConfig(&next, patch); err != nil {
		return err
	}
	if err := next.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	val, err := json.Marshal(next)
	if err != nil {
		return err
	}
	ver, err := s.putCAS(ctx, []byte(keyReplicaConfig), s.replVer, val)
	if err != nil {
		return err
	}
	s.replication, s.replVer = next, ver
	s.log.Info("replication config updated", "patch", string(patch))
	return nil
}
