package chainfire

import (
	"context"

	"connectrpc.com/connect"

	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// Version is the etcd API version Chainfire implements, reported by Status.
const Version = "3.6.0"

// maintenanceService implements etcdserverpb.Maintenance: Status (what
// `etcdctl endpoint status` shows); the rest is not offered.
type maintenanceService struct {
	s *Server
	etcdserverpbconnect.UnimplementedMaintenanceHandler
}

func (m *maintenanceService) Status(ctx context.Context, _ *connect.Request[etcdserverpb.StatusRequest]) (*connect.Response[etcdserverpb.StatusResponse], error) {
	st, err := m.s.status(ctx)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(st), nil
}

// status describes this member: raft position, leader and storage size.
func (s *Server) status(ctx context.Context) (*etcdserverpb.StatusResponse, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rs, err := s.cfg.Raft.Status(ctx, raftnode.MetadataShardID)
	if err != nil {
		return nil, err
	}
	resp := &etcdserverpb.StatusResponse{
		Header:           s.header(nil),
		Version:          Version,
		RaftIndex:        rs.CommitIndex,
		RaftTerm:         rs.Term,
		RaftAppliedIndex: rs.AppliedIndex,
		IsLearner:        rs.IsNonVoting,
		StorageVersion:   Version,
	}
	resp.Header.RaftTerm = rs.Term
	if rs.LeaderID != 0 {
		resp.Leader = rs.LeaderID
		// Report the leader's node ID (the etcd member ID) when known.
		if ms, err := s.fsm.Lookup(membersQuery{}); err == nil {
			if m := memberOfReplica(ms.([]*raftcmdv1.MemberAttributes), rs.LeaderID); m != nil {
				resp.Leader = m.NodeId
			}
		}
	}
	usage := s.cfg.DB.Metrics().DiskSpaceUsage()
	resp.DbSize, resp.DbSizeInUse = int64(usage), int64(usage)
	if rs.LeaderID == 0 {
		resp.Errors = append(resp.Errors, ErrNoLeader.Error())
	}
	return resp, nil
}

// Alarm answers alarm queries: Chainfire raises no alarms (no space quota
// alarm: pebble is not size-capped), so the list is always empty and
// activate/deactivate are accepted as no-ops. `etcdctl endpoint health`
// needs it.
func (m *maintenanceService) Alarm(context.Context, *connect.Request[etcdserverpb.AlarmRequest]) (*connect.Response[etcdserverpb.AlarmResponse], error) {
	return connect.NewResponse(&etcdserverpb.AlarmResponse{Header: m.s.header(nil)}), nil
}
