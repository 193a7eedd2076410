package chainfire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	chainfirev1 "github.com/centra-cloud/centra/gen/centra/chainfire/v1"
	"github.com/centra-cloud/centra/gen/centra/chainfire/v1/chainfirev1connect"
	"github.com/centra-cloud/centra/shared/loop"
	"github.com/centra-cloud/centra/shared/raftnode"
	centratls "github.com/centra-cloud/centra/shared/tls"
)

// The join handshake.
//
// A node started with bootstrap = false and no raft data knows neither its
// replica ID nor how the cluster dials it, and dragonboat needs both before
// it can start (its data directory is pinned to the raft address). So until
// it is added, the node serves one RPC, ClusterService.Join, on its raft port
// (the port member-add names as the peer URL, unused until dragonboat
// starts). After member-add, the metadata shard's leader calls Join there
// with the cluster ID, node ID, the allocated replica ID and the peer URL;
// the node checks the cluster and node IDs, persists the identity, closes the
// listener and starts its replica, which then catches up from the leader
// (by snapshot when the log was compacted). With TLS configured, both sides
// use the node certificates: the joining node requires a client certificate
// signed by its CA, the leader verifies the node's certificate.

// JoinInfo is what a joining node learns from the handshake.
type JoinInfo struct {
	ReplicaID uint64
	PeerURL   string
	Learner   bool
}

// joinWaiter implements the handshake a node without raft data serves on
// its raft port: Join (a member hands over the node's identity) and
// Discover (see discover.go).
type joinWaiter struct {
	chainfirev1connect.UnimplementedClusterServiceHandler
	clusterID, nodeID uint64
	accepted          chan JoinInfo
	verdicts          chan *chainfirev1.DiscoverRequest
}

func newJoinWaiter(clusterID, nodeID uint64) *joinWaiter {
	return &joinWaiter{clusterID: clusterID, nodeID: nodeID, accepted: make(chan JoinInfo, 1), verdicts: make(chan *chainfirev1.DiscoverRequest, 1)}
}

func (j *joinWaiter) Join(_ context.Context, req *connect.Request[chainfirev1.JoinRequest]) (*connect.Response[chainfirev1.JoinResponse], error) {
	r := req.Msg
	if err := j.checkIDs(r.ClusterId, r.NodeId); err != nil {
		return nil, err
	}
	if r.ReplicaId == 0 || r.PeerUrl == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("chainfire: join without replica ID or peer URL"))
	}
	select {
	case j.accepted <- JoinInfo{ReplicaID: r.ReplicaId, PeerURL: r.PeerUrl, Learner: r.IsLearner}:
		return connect.NewResponse(&chainfirev1.JoinResponse{}), nil
	default:
		return nil, connect.NewError(connect.CodeAborted, errors.New("chainfire: already joining"))
	}
}

// checkIDs refuses a caller of another cluster, or one that takes this
// node for another node.
func (j *joinWaiter) checkIDs(clusterID, nodeID uint64) error {
	switch {
	case clusterID != j.clusterID:
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("chainfire: this node is configured for cluster %d ([cluster] id), not %d", j.clusterID, clusterID))
	case nodeID != j.nodeID:
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("chainfire: this node is node %d ([node] id), not %d; check member-add --node-id and [cluster] initial_members", j.nodeID, nodeID))
	}
	return nil
}

// serveHandshake serves j on lis (TLS with tlsConfig when set, which must
// require client certificates) until the returned stop is called; stop
// closes lis.
func serveHandshake(lis net.Listener, tlsConfig *tls.Config, j *joinWaiter, log *slog.Logger) (stop func()) {
	mux := http.NewServeMux()
	mux.Handle(chainfirev1connect.NewClusterServiceHandler(j))
	srv := centratls.NewServer(mux, tlsConfig, slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	go func() { _ = srv.Serve(centratls.Listener(srv, lis)) }()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
}

// WaitForJoin serves the join handshake on lis (the node's raft address)
// until a member hands this node its identity or ctx ends. tlsConfig, when
// set, must require client certificates. lis is closed on return.
func WaitForJoin(ctx context.Context, lis net.Listener, tlsConfig *tls.Config, clusterID, nodeID uint64, log *slog.Logger) (JoinInfo, error) {
	j := newJoinWaiter(clusterID, nodeID)
	defer serveHandshake(lis, tlsConfig, j, log)()
	reminder := time.NewTicker(30 * time.Second)
	defer reminder.Stop()
	for {
		select {
		case info := <-j.accepted:
			return j.joined(info, log), nil
		case v := <-j.verdicts:
			log.Info("A member says this node should bootstrap, but it is configured to join (bootstrap = false); waiting for member-add", "from_node_id", v.FromNodeId)
		case <-ctx.Done():
			return JoinInfo{}, ctx.Err()
		case <-reminder.C:
			log.Info("Still waiting to be added to a cluster", "node_id", nodeID, "listen", lis.Addr().String())
		}
	}
}

func (j *joinWaiter) joined(info JoinInfo, log *slog.Logger) JoinInfo {
	log.Info("Join request accepted", "replica_id", info.ReplicaID, "peer_url", info.PeerURL, "learner", info.Learner)
	return info
}

// runJoiner, while this node leads the metadata shard, calls the join
// handshake of every member that was added but has not started yet (it has
// not published its client URLs), and promotes members added as voters once
// they caught up.
func (s *Server) runJoiner(ctx context.Context) {
	loop.Every(ctx, time.Second, func(time.Time) {
		if leader, _, ok := s.cfg.Raft.Leader(raftnode.MetadataShardID); !ok || leader != s.cfg.ReplicaID {
			return
		}
		table, err := s.members(ctx)
		if err != nil {
			return
		}
		// Members added, not yet joined: hand them their replica ID.
		// Members joined as non-voting but added as voters: promote them.
		// A record whose replica raft removed (a forced new cluster, a
		// crash during member-remove) is stale: handing out its replica ID
		// would start a replica raft refuses for ever.
		if !slices.ContainsFunc(table, func(m *raftcmdv1.MemberAttributes) bool { return m.ReplicaId != s.cfg.ReplicaID }) {
			return
		}
		mctx, cancel := s.withTimeout(ctx)
		ms, err := s.cfg.Raft.Membership(mctx, raftnode.MetadataShardID)
		cancel()
		if err != nil {
			s.log.Debug("Cannot read the membership to hand out identities or promote new voters", "err", err)
			return
		}
		for _, m := range table {
			switch {
			case m.ReplicaId == s.cfg.ReplicaID || len(m.PeerUrls) == 0 || isRemoved(ms, m.ReplicaId):
			case len(m.ClientUrls) > 0:
				if _, nonVoting := ms.NonVotings[m.ReplicaId]; nonVoting && !m.IsLearner {
					s.autoPromote(ctx, m)
				}
			default:
				if err := s.handshake(ctx, m.NodeId, m.ReplicaId, m.PeerUrls[0]); err != nil {
					s.log.Debug("Join handshake not answered yet", "node_id", m.NodeId, "peer_url", m.PeerUrls[0], "err", err)
				}
			}
		}
	})
}

// autoPromote promotes a member added as a voter, which joined as a
// non-voting replica, once it caught up.
func (s *Server) autoPromote(ctx context.Context, m *raftcmdv1.MemberAttributes) {
	if !s.memberMu.TryLock() {
		return // a membership change runs; next tick
	}
	defer s.memberMu.Unlock()
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if _, err := s.promote(ctx, m.NodeId); err != nil {
		s.log.Debug("New voter not promoted yet", "node_id", m.NodeId, "err", err)
		return
	}
	s.log.Info("New voter caught up and was promoted", "node_id", m.NodeId, "replica_id", m.ReplicaId)
}

// joinWait is how long member-add waits for the new node to answer the
// join handshake before it reports the member as added but not connected.
const joinWait = 2 * time.Second

// awaitJoin hands the added node its identity (handshake), retrying for up
// to joinWait; it returns the last handshake error if the node never
// answered. The leader's join loop keeps trying afterwards.
func (s *Server) awaitJoin(ctx context.Context, nodeID, replicaID uint64, peerURL string) error {
	ctx, cancel := context.WithTimeout(ctx, joinWait)
	defer cancel()
	var last error
	for {
		err := s.handshake(ctx, nodeID, replicaID, peerURL)
		if err == nil {
			return nil
		}
		// An attempt cut by our own deadline says nothing about the node:
		// report the one before it.
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return last
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// joinedGrace is how long after a node accepted the handshake it is not
// called again: it is starting its replica (and no longer listens for
// the handshake). A node that failed to start waits again afterwards.
const joinedGrace = 30 * time.Second

// handshake calls Join on a member added but not joined yet: member-add
// (awaitJoin) and the leader's join loop share it, so that a node that just
// took its identity (and closed the handshake listener) is not called again
// and reported as unreachable.
func (s *Server) handshake(ctx context.Context, nodeID, replicaID uint64, peerURL string) error {
	s.joinMu.Lock()
	defer s.joinMu.Unlock()
	if at, ok := s.joined[replicaID]; ok && time.Since(at) < joinedGrace {
		return nil
	}
	err := s.callJoin(ctx, nodeID, replicaID, peerURL)
	if connect.CodeOf(err) == connect.CodeAborted {
		err = nil // "already joining": an earlier call was accepted
	}
	if err != nil {
		if strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "x509:") || strings.Contains(err.Error(), "HTTP response to HTTPS client") {
			err = fmt.Errorf("%w (do this cluster and the node use the same TLS settings and CA?)", err)
		}
		return err
	}
	s.joined[replicaID] = time.Now()
	s.log.Info("Handed its replica ID to the joining node", "node_id", nodeID, "replica_id", replicaID, "peer_url", peerURL)
	return nil
}

func (s *Server) callJoin(ctx context.Context, nodeID, replicaID uint64, peerURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := chainfirev1connect.NewClusterServiceClient(s.fwd.client, s.peerURL(peerURL), connect.WithGRPC()).Join(ctx, connect.NewRequest(&chainfirev1.JoinRequest{
		// Every member joins as a non-voting replica (see AddMember).
		ClusterId: s.cfg.ClusterID, NodeId: nodeID, ReplicaId: replicaID, PeerUrl: peerURL, IsLearner: true,
	}))
	return err
}

// peerURL returns the URL of a raft address: https when the cluster uses
// TLS (raft and API share the certificates), else http.
func (s *Server) peerURL(addr string) string {
	if s.cfg.ClientTLS != nil {
		return "https://" + addr
	}
	return "http://" + addr
}
