package chainfire

import (
	"context"
	"sort"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// clusterService implements etcdserverpb.Cluster's MemberList; membership
// changes are served by the membership layer.
type clusterService struct {
	s *Server
	etcdserverpbconnect.UnimplementedClusterHandler
}

func (c *clusterService) MemberList(ctx context.Context, req *connect.Request[etcdserverpb.MemberListRequest]) (*connect.Response[etcdserverpb.MemberListResponse], error) {
	members, err := c.s.MemberList(ctx)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&etcdserverpb.MemberListResponse{Header: c.s.header(nil), Members: members}), nil
}

// MemberList combines the metadata shard's raft membership (voters and
// learners) with the attributes members published, ordered by ID.
func (s *Server) MemberList(ctx context.Context) ([]*etcdserverpb.Member, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	ms, err := s.cfg.Raft.Membership(ctx, raftnode.MetadataShardID)
	if err != nil {
		return nil, err
	}
	attrs, err := s.members(ctx)
	if err != nil {
		return nil, err
	}
	var out []*etcdserverpb.Member
	add := func(replicas map[uint64]string, learner bool) {
		for id, addr := range replicas {
			m := &etcdserverpb.Member{ID: id, PeerURLs: []string{addr}, IsLearner: learner}
			if a := memberOfReplica(attrs, id); a != nil {
				m.ID, m.Name, m.ClientURLs = a.NodeId, a.Name, a.ClientUrls
			}
			out = append(out, m)
		}
	}
	add(ms.Nodes, false)
	add(ms.NonVotings, true)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
