package chainfire

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

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

// toEtcdMember converts a member for etcd's API, whose peer URLs are URLs
// with a scheme (the raft address is host:port).
func (s *Server) toEtcdMember(m *chainfirev1.Member) *etcdserverpb.Member {
	peers := make([]string, len(m.PeerUrls))
	for i, u := range m.PeerUrls {
		peers[i] = s.peerURL(u)
	}
	return &etcdserverpb.Member{ID: m.NodeId, Name: m.Name, PeerURLs: peers, ClientURLs: m.ClientUrls, IsLearner: m.IsLearner}
}

func (s *Server) toEtcdMembers(ms []*chainfirev1.Member) []*etcdserverpb.Member {
	out := make([]*etcdserverpb.Member, len(ms))
	for i, m := range ms {
		out[i] = s.toEtcdMember(m)
	}
	return out
}

func (c *clusterService) MemberList(ctx context.Context, _ *connect.Request[etcdserverpb.MemberListRequest]) (*connect.Response[etcdserverpb.MemberListResponse], error) {
	view, _, err := c.s.memberView(ctx)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&etcdserverpb.MemberListResponse{Header: c.s.header(nil), Members: c.s.toEtcdMembers(view)}), nil
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
	return connect.NewResponse(&etcdserverpb.MemberAddResponse{Header: c.s.header(nil), Member: c.s.toEtcdMember(m), Members: c.s.toEtcdMembers(all)}), nil
}

func (c *clusterService) MemberRemove(ctx context.Context, req *connect.Request[etcdserverpb.MemberRemoveRequest]) (*connect.Response[etcdserverpb.MemberRemoveResponse], error) {
	all, err := c.s.RemoveMember(ctx, req.Msg.ID)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&etcdserverpb.MemberRemoveResponse{Header: c.s.header(nil), Members: c.s.toEtcdMembers(all)}), nil
}

func (c *clusterService) MemberPromote(ctx context.Context, req *connect.Request[etcdserverpb.MemberPromoteRequest]) (*connect.Response[etcdserverpb.MemberPromoteResponse], error) {
	if _, err := c.s.PromoteMember(ctx, req.Msg.ID); err != nil {
		return nil, toConnectError(err)
	}
	view, _, err := c.s.memberView(ctx)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&etcdserverpb.MemberPromoteResponse{Header: c.s.header(nil), Members: c.s.toEtcdMembers(view)}), nil
}

// MemberUpdate changes a member's peer URLs in etcd. A dragonboat replica is
// bound to its raft address for life, so only the current URL (in any
// spelling etcd accepts) is accepted; a move to a new address is a
// member-remove and a member-add of the wiped node, and the error says so.
func (c *clusterService) MemberUpdate(ctx context.Context, req *connect.Request[etcdserverpb.MemberUpdateRequest]) (*connect.Response[etcdserverpb.MemberUpdateResponse], error) {
	if len(req.Msg.PeerURLs) != 1 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("chainfire: give exactly one peer URL (the raft address)"))
	}
	u, err := normalizePeerURL(req.Msg.PeerURLs[0])
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	view, _, err := c.s.memberView(ctx)
	if err != nil {
		return nil, toConnectError(err)
	}
	m := findMember(view, req.Msg.ID)
	if m == nil {
		return nil, toConnectError(ErrMemberNotFound) // etcd's exact message: clients match it
	}
	if !slices.Contains(m.PeerUrls, u) {
		for _, o := range view {
			if slices.Contains(o.PeerUrls, u) {
				return nil, toConnectError(ErrPeerURLExists)
			}
		}
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"chainfire: node %d keeps its raft address %s for life (dragonboat binds a replica to it); to move it to %s, member-remove it, wipe its data directory and member-add it with the new peer URL",
			m.NodeId, strings.Join(m.PeerUrls, ","), u))
	}
	return connect.NewResponse(&etcdserverpb.MemberUpdateResponse{Header: c.s.header(nil), Members: c.s.toEtcdMembers(view)}), nil
}
