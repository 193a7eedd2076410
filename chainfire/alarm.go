package chainfire

import (
	"cmp"
	"context"
	"slices"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// Alarm types (etcd's AlarmType numbers).
const (
	alarmNoSpace = int32(etcdserverpb.AlarmType_NOSPACE)
	alarmCorrupt = int32(etcdserverpb.AlarmType_CORRUPT)
)

// alarmVersion is the command version that introduced the alarm command.
const alarmVersion = 2

// versionFor is the lowest encoding version that knows cmd: replicas of an
// older binary keep applying every command they know.
func versionFor(cmd *raftcmdv1.Command) uint32 {
	if _, ok := cmd.Cmd.(*raftcmdv1.Command_Auth); ok || cmd.AuthRevision != 0 {
		return authVersion
	}
	switch c := cmd.Cmd.(type) {
	case *raftcmdv1.Command_Alarm:
		return alarmVersion
	case *raftcmdv1.Command_Txn:
		if hasNestedTxn(c.Txn) {
			return nestedTxnVersion
		}
	}
	return 1
}

func hasAlarm(as []mvcc.Alarm, typ int32) bool {
	return slices.ContainsFunc(as, func(a mvcc.Alarm) bool { return a.Type == typ })
}

// gate refuses, at apply time and so identically on every replica, the
// commands an active alarm forbids (etcd's capped and corrupt appliers):
// with CORRUPT every KV and lease change, with NOSPACE everything that adds
// data (puts, txns with a put, lease grants). Deletes, compaction and lease
// revokes free space and stay allowed under NOSPACE.
func gate(alarms []mvcc.Alarm, cmd *raftcmdv1.Command) error {
	if len(alarms) == 0 {
		return nil
	}
	switch c := cmd.Cmd.(type) {
	case *raftcmdv1.Command_Put, *raftcmdv1.Command_LeaseGrant:
		if hasAlarm(alarms, alarmCorrupt) {
			return ErrCorrupt
		}
		if hasAlarm(alarms, alarmNoSpace) {
			return ErrNoSpace
		}
	case *raftcmdv1.Command_Txn:
		if hasAlarm(alarms, alarmCorrupt) {
			return ErrCorrupt
		}
		if hasAlarm(alarms, alarmNoSpace) && txnPuts(c.Txn) {
			return ErrNoSpace
		}
	case *raftcmdv1.Command_DeleteRange, *raftcmdv1.Command_Compaction, *raftcmdv1.Command_LeaseRevoke:
		if hasAlarm(alarms, alarmCorrupt) {
			return ErrCorrupt
		}
	}
	return nil
}

// txnPuts reports whether either branch of t (nested txns included) puts.
func txnPuts(t *etcdserverpb.TxnRequest) bool {
	for _, ops := range [][]*etcdserverpb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			switch r := op.Request.(type) {
			case *etcdserverpb.RequestOp_RequestPut:
				return true
			case *etcdserverpb.RequestOp_RequestTxn:
				if txnPuts(r.RequestTxn) {
					return true
				}
			}
		}
	}
	return false
}

// applyAlarm activates or deactivates an alarm; the response lists the
// alarm when it changed (etcd's). Unknown alarm types change nothing.
func (f *fsm) applyAlarm(b *pebble.Batch, r *etcdserverpb.AlarmRequest) (*etcdserverpb.AlarmResponse, error) {
	resp := &etcdserverpb.AlarmResponse{Header: &etcdserverpb.ResponseHeader{}}
	a := mvcc.Alarm{Member: r.MemberID, Type: int32(r.Alarm)}
	if a.Type != alarmNoSpace && a.Type != alarmCorrupt {
		return resp, nil
	}
	on := r.Action == etcdserverpb.AlarmRequest_ACTIVATE
	if r.Action != etcdserverpb.AlarmRequest_ACTIVATE && r.Action != etcdserverpb.AlarmRequest_DEACTIVATE {
		return resp, nil
	}
	i := slices.Index(f.applyAlarms, a)
	if on == (i >= 0) {
		return resp, nil
	}
	if err := f.st.SetAlarm(b, a, on); err != nil {
		return nil, err
	}
	alarms := slices.Clone(f.applyAlarms)
	if on {
		alarms = append(alarms, a)
		slices.SortFunc(alarms, func(x, y mvcc.Alarm) int {
			return cmp.Or(cmp.Compare(x.Member, y.Member), cmp.Compare(x.Type, y.Type))
		})
		f.log.Warn("Alarm raised", "member_id", a.Member, "alarm", etcdserverpb.AlarmType(a.Type).String())
	} else {
		alarms = slices.Delete(alarms, i, i+1)
		f.log.Info("Alarm cleared", "member_id", a.Member, "alarm", etcdserverpb.AlarmType(a.Type).String())
	}
	f.applyAlarms = alarms
	resp.Alarms = []*etcdserverpb.AlarmMember{{MemberID: a.Member, Alarm: etcdserverpb.AlarmType(a.Type)}}
	return resp, nil
}

// activeAlarms returns the alarms of the committed state.
func (f *fsm) activeAlarms() []mvcc.Alarm { return *f.alarms.Load() }

func toAlarmMembers(as []mvcc.Alarm, typ etcdserverpb.AlarmType) []*etcdserverpb.AlarmMember {
	var out []*etcdserverpb.AlarmMember
	for _, a := range as {
		if typ == etcdserverpb.AlarmType_NONE || int32(typ) == a.Type {
			out = append(out, &etcdserverpb.AlarmMember{MemberID: a.Member, Alarm: etcdserverpb.AlarmType(a.Type)})
		}
	}
	return out
}

// Alarm lists (GET), raises or clears alarms; changes go through raft so
// every member refuses the same writes.
func (m *maintenanceService) Alarm(ctx context.Context, req *connect.Request[etcdserverpb.AlarmRequest]) (*connect.Response[etcdserverpb.AlarmResponse], error) {
	if req.Msg.Action == etcdserverpb.AlarmRequest_GET {
		return connect.NewResponse(&etcdserverpb.AlarmResponse{Header: m.s.header(nil), Alarms: toAlarmMembers(m.s.fsm.activeAlarms(), req.Msg.Alarm)}), nil
	}
	return write[etcdserverpb.AlarmResponse](ctx, m.s, "alarm", &raftcmdv1.Command{Cmd: &raftcmdv1.Command_Alarm{Alarm: req.Msg}})
}

// raiseAlarm proposes an alarm for this member unless it is active.
func (s *Server) raiseAlarm(ctx context.Context, typ int32) error {
	return s.raiseAlarmFor(ctx, s.cfg.NodeID, typ)
}

// raiseAlarmFor proposes an alarm for member unless it is active.
func (s *Server) raiseAlarmFor(ctx context.Context, member uint64, typ int32) error {
	if slices.Contains(s.fsm.activeAlarms(), mvcc.Alarm{Member: member, Type: typ}) {
		return nil
	}
	return s.propose(ctx, &raftcmdv1.Command{Cmd: &raftcmdv1.Command_Alarm{Alarm: &etcdserverpb.AlarmRequest{
		Action: etcdserverpb.AlarmRequest_ACTIVATE, MemberID: member, Alarm: etcdserverpb.AlarmType(typ),
	}}})
}

// quotaInterval is how often a member measures its space use against the
// quota.
const quotaInterval = time.Second

// spaceUsed estimates the bytes Chainfire's data takes in the state DB: its
// tables on disk plus what the WAL holds that is not flushed yet (shared
// with other shards of the process, so an overestimate by at most the
// memtables).
func (s *Server) spaceUsed() int64 {
	lo, hi := raftnode.ShardKeyspace(raftnode.MetadataShardID).Bounds()
	n, err := s.cfg.DB.EstimateDiskUsage(lo, hi)
	if err != nil {
		s.log.Debug("Cannot estimate the disk usage", "err", err)
	}
	return int64(n + s.cfg.DB.Metrics().WAL.Size)
}

// monitorQuota keeps the space estimate current and raises NOSPACE on the
// cluster once this member's data exceeds quota_backend_bytes, before the
// disk itself is full.
func (s *Server) monitorQuota(ctx context.Context) {
	t := time.NewTicker(quotaInterval)
	defer t.Stop()
	for {
		s.used.Store(s.spaceUsed())
		if q := s.cfg.QuotaBackendBytes; q > 0 && s.used.Load() > q {
			if err := s.raiseAlarm(ctx, alarmNoSpace); err != nil {
				s.log.Debug("Raising the NOSPACE alarm failed; retrying", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// admit refuses a command that adds data when the cluster has a NOSPACE or
// CORRUPT alarm or this member is over its quota (raising NOSPACE then),
// before it costs a raft round. cost is the command's encoded size.
func (s *Server) admit(ctx context.Context, cmd *raftcmdv1.Command, cost int) error {
	if err := gate(s.fsm.activeAlarms(), cmd); err != nil {
		return err
	}
	q := s.cfg.QuotaBackendBytes
	if q <= 0 || gate([]mvcc.Alarm{{Type: alarmNoSpace}}, cmd) == nil || s.used.Load()+int64(cost) <= q {
		return nil
	}
	s.log.Warn("Write refused: over the space quota", "used_bytes", s.used.Load(), "cost_bytes", cost, "quota_backend_bytes", q)
	if err := s.raiseAlarm(ctx, alarmNoSpace); err != nil {
		s.log.Warn("Raising the NOSPACE alarm failed", "err", err)
	}
	return ErrNoSpace // etcd's exact message: clients match it
}
