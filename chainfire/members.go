package chainfire

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"slices"
	"time"

	"connectrpc.com/connect"

	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/shared/raftnode"
	centratls "github.com/centra-cloud/centra/shared/tls"
)

// members returns the published attributes of every member.
func (s *Server) members(ctx context.Context) ([]*raftcmdv1.MemberAttributes, error) {
	return s.readMembers(ctx, false)
}

// readMembers reads the member table, linearizably unless serializable.
func (s *Server) readMembers(ctx context.Context, serializable bool) ([]*raftcmdv1.MemberAttributes, error) {
	out, err := s.read(ctx, membersQuery{}, serializable)
	if err != nil {
		return nil, err
	}
	return out.([]*raftcmdv1.MemberAttributes), nil
}

// memberOfReplica returns the member whose metadata-shard replica is id.
func memberOfReplica(ms []*raftcmdv1.MemberAttributes, id uint64) *raftcmdv1.MemberAttributes {
	for _, m := range ms {
		if m.ReplicaId == id {
			return m
		}
	}
	return nil
}

// leaderURL returns the API URL of the metadata shard's leader.
func (s *Server) leaderURL(ctx context.Context) (string, error) {
	leader, _, ok := s.cfg.Raft.Leader(raftnode.MetadataShardID)
	if !ok || leader == 0 {
		return "", ErrNoLeader
	}
	ms, err := s.members(ctx)
	if err != nil {
		return "", err
	}
	m := memberOfReplica(ms, leader)
	if m == nil || len(m.ClientUrls) == 0 {
		return "", fmt.Errorf("%w: the leader (replica %d) has not published its API address yet", ErrNoLeader, leader)
	}
	return m.ClientUrls[0], nil
}

// publishAttributes records this member's name and URLs in the metadata
// shard (etcd's "publish"), retrying until it succeeds; other members use
// them to list members and to reach the leader.
func (s *Server) publishAttributes(ctx context.Context) {
	want := &raftcmdv1.MemberAttributes{
		NodeId: s.cfg.NodeID, ReplicaId: s.cfg.ReplicaID, Name: s.cfg.Name,
		PeerUrls: s.cfg.PeerURLs, ClientUrls: s.cfg.ClientURLs,
	}
	backoff := 100 * time.Millisecond
	for {
		err := s.publishOnce(ctx, want)
		if err == nil {
			return
		}
		s.log.Debug("Publishing member attributes failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (s *Server) publishOnce(ctx context.Context, want *raftcmdv1.MemberAttributes) error {
	ms, err := s.members(ctx)
	if err != nil {
		return err
	}
	if m := find(ms, want.NodeId); m != nil && m.ReplicaId == want.ReplicaId && m.Name == want.Name &&
		slices.Equal(m.PeerUrls, want.PeerUrls) && slices.Equal(m.ClientUrls, want.ClientUrls) {
		return nil
	}
	err = s.propose(ctx, &raftcmdv1.Command{Cmd: &raftcmdv1.Command_MemberAttributes{MemberAttributes: want}})
	if err == nil {
		s.log.Info("Published member attributes", "name", want.Name, "client_urls", want.ClientUrls)
	}
	return err
}

// forwarder calls the leader's API for requests only the leader can answer.
type forwarder struct {
	client *http.Client
}

func newForwarder(tlsConfig *tls.Config) *forwarder {
	return &forwarder{client: centratls.HTTPClient(tlsConfig, 5*time.Second)}
}

func (f *forwarder) close() { f.client.CloseIdleConnections() }

func (f *forwarder) keepAlive(ctx context.Context, url string, id int64) (int64, error) {
	stream := etcdserverpbconnect.NewLeaseClient(f.client, url, connect.WithGRPC()).LeaseKeepAlive(ctx)
	if err := stream.Send(&etcdserverpb.LeaseKeepAliveRequest{ID: id}); err != nil {
		return 0, fmt.Errorf("chainfire: forward keep-alive to leader %s: %w", url, err)
	}
	resp, err := stream.Receive()
	_ = stream.CloseRequest()
	_ = stream.CloseResponse()
	if err != nil {
		return 0, fmt.Errorf("chainfire: forward keep-alive to leader %s: %w", url, err)
	}
	return resp.TTL, nil
}

// timeToLive forwards a LeaseTimeToLive with the client's auth token (every
// member knows every token), so the leader checks the same permissions.
func (f *forwarder) timeToLive(ctx context.Context, url string, req *etcdserverpb.LeaseTimeToLiveRequest, token string) (*etcdserverpb.LeaseTimeToLiveResponse, error) {
	r := connect.NewRequest(req)
	if token != "" {
		r.Header().Set(tokenHeader, token)
	}
	resp, err := etcdserverpbconnect.NewLeaseClient(f.client, url, connect.WithGRPC()).LeaseTimeToLive(ctx, r)
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}
