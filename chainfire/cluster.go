package chainfire

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	chainfirev1 "github.com/centra-cloud/centra/gen/centra/chainfire/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
)

// clusterService implements etcdserverpb.Cluster on top of the membership
// operations, so `etcdctl member list/add/promote/remove` work. etcd member
// IDs are Chainfire node IDs; MemberAdd (which carries no ID) picks the
// smallest node ID above every current member's, and the new node must be
// configured with it ([node] id).
type clusterService struct {
	s *Server
	etcdserverpbconnect.UnimplementedClusterHandler
}

func toEtcdMember(m *chainfirev1.Member) *etcdserverpb.Member {
	return &etcdserverpb.Member{ID: m.NodeId, Name: m.Name, PeerURLs: m.PeerUrls, ClientURLs: m.ClientUrls, IsLearner: m.IsLearner}
}

func toEtcdMembers(ms []*chainfirev1.Member) []*etcdserverpb.Member {
	out := make([]*etcdserverpb.Member, len(ms))
	for i, m := range ms {
		out[i] = toEtcdMember(m)
	}
	return out
}

func (c *clusterService) MemberList(ctx context.Context, _ *connect.Request[etcdserverpb.MemberListRequest]) (*connect.Response[etcdserverpb.MemberListResponse], error) {
	view, _, err := c.s.memberView(ctx)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&etcdserverpb.MemberListResponse{Header: c.s.header(nil), Members: toEtcdMembers(view)}), nil
}

func (c *clusterService) MemberAdd(ctx context.Context, req *connect.Request[etcdserverpb.MemberAddRequest]) (*connect.Response[etcdserverpb.MemberAddResponse], error) {
	if len(req.Msg.PeerURLs) != 1 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("chainfire: give exactly one peer URL (the raft address)"))
	}
	view, _, err := c.s.memberView(ctx)
	if err != nil {
		return nil, toConnectError(err)
	}
	var id uint64
	for _, m := range view {
		id = max(id, m.NodeId)
	}
	m, all, err := c.s.AddMember(ctx, id+1, req.Msg.PeerURLs[0], req.Msg.IsLearner)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&etcdserverpb.MemberAddResponse{Header: c.s.header(nil), Member: toEtcdMember(m), Members: toEtcdMembers(all)}), nil
}

func (c *clusterService) MemberRemove(ctx context.Context, req *connect.Request[etcdserverpb.MemberRemoveRequest]) (*connect.Response[etcdserverpb.MemberRemoveResponse], error) {
	all, err := c.s.RemoveMember(ctx, req.Msg.ID)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&etcdserverpb.MemberRemoveResponse{Header: c.s.header(nil), Members: toEtcdMembers(all)}), nil
}

func (c *clusterService) MemberPromote(ctx context.Context, req *connect.Request[etcdserverpb.MemberPromoteRequest]) (*connect.Response[etcdserverpb.MemberPromoteResponse], error) {
	if _, err := c.s.PromoteMember(ctx, req.Msg.ID); err != nil {
		return nil, toConnectError(err)
	}
	view, _, err := c.s.memberView(ctx)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&etcdserverpb.MemberPromoteResponse{Header: c.s.header(nil), Members: toEtcdMembers(view)}), nil
}
