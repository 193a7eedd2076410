package chainfire

import (
	"context"

	"connectrpc.com/connect"

	chainfirev1 "github.com/centra-cloud/centra/gen/centra/chainfire/v1"
	"github.com/centra-cloud/centra/gen/centra/chainfire/v1/chainfirev1connect"
)

// adminService implements centra.chainfire.v1.ClusterService on a member.
type adminService struct {
	chainfirev1connect.UnimplementedClusterServiceHandler
	s *Server
}

func (a *adminService) AddMember(ctx context.Context, req *connect.Request[chainfirev1.AddMemberRequest]) (*connect.Response[chainfirev1.AddMemberResponse], error) {
	m, all, pending, err := a.s.AddMember(ctx, req.Msg.NodeId, req.Msg.PeerUrl, req.Msg.IsLearner)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&chainfirev1.AddMemberResponse{Member: m, Members: all, Pending: pending}), nil
}

func (a *adminService) RemoveMember(ctx context.Context, req *connect.Request[chainfirev1.RemoveMemberRequest]) (*connect.Response[chainfirev1.RemoveMemberResponse], error) {
	all, err := a.s.RemoveMember(ctx, req.Msg.NodeId)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&chainfirev1.RemoveMemberResponse{Members: all}), nil
}

func (a *adminService) PromoteMember(ctx context.Context, req *connect.Request[chainfirev1.PromoteMemberRequest]) (*connect.Response[chainfirev1.PromoteMemberResponse], error) {
	m, err := a.s.PromoteMember(ctx, req.Msg.NodeId)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&chainfirev1.PromoteMemberResponse{Member: m}), nil
}

func (a *adminService) TransferLeader(ctx context.Context, req *connect.Request[chainfirev1.TransferLeaderRequest]) (*connect.Response[chainfirev1.TransferLeaderResponse], error) {
	id, err := a.s.TransferLeader(ctx, req.Msg.NodeId)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&chainfirev1.TransferLeaderResponse{LeaderId: id}), nil
}

func (a *adminService) Join(context.Context, *connect.Request[chainfirev1.JoinRequest]) (*connect.Response[chainfirev1.JoinResponse], error) {
	return nil, connect.NewError(connect.CodeFailedPrecondition, errAlreadyMember)
}
