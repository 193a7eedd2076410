package chainfire

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"connectrpc.com/connect"

	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// Version is the etcd API version Chainfire implements, reported by Status.
const Version = "3.6.0"

// maintenanceService implements etcdserverpb.Maintenance: Status, Alarm,
// Hash, HashKV, Defragment, MoveLeader, Snapshot and Downgrade (which
// answers as an etcd cluster that has no lower version to go to).
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
	dm := s.cfg.DB.Metrics()
	resp.DbSize = int64(dm.DiskSpaceUsage())
	// In use: live tables and WAL, without files waiting for deletion.
	resp.DbSizeInUse = int64(dm.Table.Local.LiveSize + dm.BlobFiles.Local.LiveSize + dm.WAL.PhysicalSize)
	if rs.LeaderID == 0 {
		resp.Errors = append(resp.Errors, ErrNoLeader.Error())
	}
	// As etcd: the active alarms, and the quota.
	for _, a := range toAlarmMembers(s.fsm.activeAlarms(), etcdserverpb.AlarmType_NONE) {
		resp.Errors = append(resp.Errors, fmt.Sprintf("memberID:%d alarm:%s ", a.MemberID, a.Alarm))
	}
	resp.DbSizeQuota = s.cfg.QuotaBackendBytes
	return resp, nil
}

func (m *maintenanceService) HashKV(_ context.Context, req *connect.Request[etcdserverpb.HashKVRequest]) (*connect.Response[etcdserverpb.HashKVResponse], error) {
	h, err := m.s.fsm.hashKV(req.Msg.Revision)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&etcdserverpb.HashKVResponse{
		Header: m.s.header(&etcdserverpb.ResponseHeader{Revision: h.current}),
		Hash:   h.hash, CompactRevision: h.compacted, HashRevision: h.rev,
	}), nil
}

func (m *maintenanceService) Hash(context.Context, *connect.Request[etcdserverpb.HashRequest]) (*connect.Response[etcdserverpb.HashResponse], error) {
	h, err := m.s.fsm.hashAll()
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&etcdserverpb.HashResponse{Header: m.s.header(&etcdserverpb.ResponseHeader{Revision: h.current}), Hash: h.hash}), nil
}

func (m *maintenanceService) Defragment(ctx context.Context, _ *connect.Request[etcdserverpb.DefragmentRequest]) (*connect.Response[etcdserverpb.DefragmentResponse], error) {
	if err := m.s.defrag(ctx); err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&etcdserverpb.DefragmentResponse{Header: m.s.header(nil)}), nil
}

// MoveLeader hands the leadership to another voter. As etcd, only the
// leader serves it (etcdctl move-leader finds the leader among its
// endpoints).
func (m *maintenanceService) MoveLeader(ctx context.Context, req *connect.Request[etcdserverpb.MoveLeaderRequest]) (*connect.Response[etcdserverpb.MoveLeaderResponse], error) {
	s := m.s
	if leader, _, ok := s.cfg.Raft.Leader(raftnode.MetadataShardID); !ok || leader != s.cfg.ReplicaID {
		return nil, toConnectError(ErrNotLeader)
	}
	view, _, err := s.memberView(ctx)
	if err != nil {
		return nil, toConnectError(err)
	}
	target := findMember(view, req.Msg.TargetID)
	if target == nil || target.IsLearner {
		return nil, toConnectError(ErrBadLeaderTransferee)
	}
	if target.ReplicaId != s.cfg.ReplicaID {
		start := time.Now()
		tctx, cancel := s.withTimeout(ctx)
		defer cancel()
		if err := s.cfg.Raft.TransferLeader(tctx, raftnode.MetadataShardID, target.ReplicaId); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = ErrTimeoutLeaderTransfer
			}
			return nil, toConnectError(err)
		}
		s.log.Info("Leadership moved", "to_node_id", target.NodeId, "took", time.Since(start).Round(time.Millisecond))
	}
	return connect.NewResponse(&etcdserverpb.MoveLeaderResponse{Header: s.header(nil)}), nil
}

// downgradeVersion is the format etcd accepts as a downgrade target.
var downgradeVersion = regexp.MustCompile(`^v?[0-9]+\.[0-9]+(\.[0-9]+)?$`)

// Downgrade answers as an etcd cluster whose version cannot go lower: etcd
// 3.5's downgrade lowers the cluster version (and with it the storage
// schema) one minor version so that older etcd binaries can join; centra
// has one binary and one storage format, and raft commands carry their own
// versions (DESIGN.md "command versions"), so there is no cluster version
// to lower. VALIDATE and ENABLE fail as etcd does for a target it cannot
// reach (InvalidArgument, "etcdserver: invalid downgrade target version"),
// with the reason and the way back appended; CANCEL fails as etcd does when
// no downgrade runs.
func (m *maintenanceService) Downgrade(_ context.Context, req *connect.Request[etcdserverpb.DowngradeRequest]) (*connect.Response[etcdserverpb.DowngradeResponse], error) {
	switch req.Msg.Action {
	case etcdserverpb.DowngradeRequest_VALIDATE, etcdserverpb.DowngradeRequest_ENABLE:
		if !downgradeVersion.MatchString(req.Msg.Version) {
			return nil, toConnectError(ErrWrongDowngradeVersionFormat)
		}
		return nil, toConnectError(fmt.Errorf("%w %s: downgrade is not supported by centra (one binary, one storage format, no cluster version to lower); "+
			"to go back to an older release, save a snapshot (`centra snapshot save FILE`) and restore it into a new cluster "+
			"running that release (`centra snapshot restore`)", ErrInvalidDowngradeTarget, req.Msg.Version))
	case etcdserverpb.DowngradeRequest_CANCEL:
		return nil, toConnectError(fmt.Errorf("%w: centra never runs a downgrade", ErrNoInflightDowngrade))
	}
	return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("etcdserver: unknown downgrade action %d", req.Msg.Action))
}
