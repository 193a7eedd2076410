package chainfire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"

	chainfirev1 "github.com/centra-cloud/centra/gen/centra/chainfire/v1"
	"github.com/centra-cloud/centra/gen/centra/chainfire/v1/chainfirev1connect"
	"github.com/centra-cloud/centra/shared/loop"
	"github.com/centra-cloud/centra/shared/raftnode"
	centratls "github.com/centra-cloud/centra/shared/tls"
)

// Bootstrap with an empty data directory (chainfire/DESIGN.md has the
// why). A node with bootstrap = true and no raft data does not bootstrap at
// once when initial_members names other nodes: it serves the handshake
// (Join and Discover) on its raft address and calls Discover on every other
// initial member's raft address.
//
//   - A peer that answers is in the same state (no cluster runs there); a
//     peer that cannot be dialled is down. When every peer is one or the
//     other, no cluster runs and the node bootstraps (the first start of a
//     cluster whose nodes come up at different times).
//   - Anything else listens there: dragonboat, that is a running member. The
//     node then never bootstraps on its own; it waits for the running
//     cluster. Every member calls Discover on the raft address of each
//     voter of its membership (runDiscoveryAnswers): a node that answers has
//     no raft data. If the member table has no record of that replica it is
//     an initial member that never started: verdict BOOTSTRAP. If the record
//     has client URLs, the node ran and lost its data: verdict REJOIN, and
//     the node logs the member-remove / member-add commands to run. A
//     member-add makes the leader call Join, and the node joins.

// discoverInterval is how often a waiting node probes its peers and how
// often members look for nodes that wait.
const discoverInterval = 2 * time.Second

// Discover implements ClusterService.Discover for a node without raft data.
func (j *joinWaiter) Discover(_ context.Context, req *connect.Request[chainfirev1.DiscoverRequest]) (*connect.Response[chainfirev1.DiscoverResponse], error) {
	r := req.Msg
	if r.ClusterId != j.clusterID {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("chainfire: this node is configured for cluster %d ([cluster] id), not %d", j.clusterID, r.ClusterId))
	}
	if r.Verdict != chainfirev1.DiscoverVerdict_DISCOVER_VERDICT_UNSPECIFIED {
		if err := j.checkIDs(r.ClusterId, r.NodeId); err != nil {
			return nil, err
		}
		select {
		case j.verdicts <- r:
		default: // one pending verdict is enough; members repeat theirs
		}
	}
	return connect.NewResponse(&chainfirev1.DiscoverResponse{NodeId: j.nodeID}), nil
}

// DiscoverConfig configures DiscoverBootstrap.
type DiscoverConfig struct {
	ClusterID, NodeID uint64
	// Peers are the other initial members: node ID -> raft address.
	Peers map[uint64]string
	// PeerURL is this node's raft address as initial_members gives it.
	PeerURL string
	// ServerTLS serves the handshake (it must require client
	// certificates); ClientTLS dials the peers. Both nil without TLS.
	ServerTLS, ClientTLS *tls.Config
	Log                  *slog.Logger
}

// DiscoverOutcome is how a node with bootstrap = true and no raft data
// proceeds: bootstrap with initial_members, or join with Join's identity.
type DiscoverOutcome struct {
	Bootstrap bool
	Join      JoinInfo
}

// DiscoverBootstrap decides whether a node with bootstrap = true and no raft
// data may bootstrap (see the comment at the top of this file). It serves
// the handshake on lis, its raft address, and closes lis on return.
func DiscoverBootstrap(ctx context.Context, lis net.Listener, cfg DiscoverConfig) (DiscoverOutcome, error) {
	log := cfg.Log
	j := newJoinWaiter(cfg.ClusterID, cfg.NodeID)
	defer serveHandshake(lis, cfg.ServerTLS, j, log)()
	client := centratls.HTTPClient(cfg.ClientTLS, time.Second)
	defer client.CloseIdleConnections()
	running := probePeers(ctx, client, cfg)
	if len(running) == 0 {
		log.Info("No cluster runs at the other initial members (each is down or also starting); bootstrapping", "node_id", cfg.NodeID)
		return DiscoverOutcome{Bootstrap: true}, nil
	}
	addCmd := fmt.Sprintf("centra cluster member-add --node-id %d --peer-url %s", cfg.NodeID, cfg.PeerURL)
	log.Info("A cluster already runs at "+strings.Join(running, ", ")+"; this node has no data, so it waits for that cluster: it bootstraps if it is an initial member that never started, else it joins once added (if this node lost its data, on a member run: centra cluster member-remove --node-id "+fmt.Sprint(cfg.NodeID)+", then "+addCmd+")",
		"node_id", cfg.NodeID, "listen", lis.Addr().String())
	rejoin := false
	reminder := time.NewTicker(30 * time.Second)
	defer reminder.Stop()
	for {
		select {
		case info := <-j.accepted:
			return DiscoverOutcome{Join: j.joined(info, log)}, nil
		case v := <-j.verdicts:
			switch v.Verdict {
			case chainfirev1.DiscoverVerdict_DISCOVER_VERDICT_BOOTSTRAP:
				if rejoin {
					continue // another member knows this node ran before
				}
				log.Info("The running cluster has this node as an initial member that never started; bootstrapping", "from_node_id", v.FromNodeId, "replica_id", v.ReplicaId)
				return DiscoverOutcome{Bootstrap: true}, nil
			case chainfirev1.DiscoverVerdict_DISCOVER_VERDICT_REJOIN:
				if !rejoin {
					log.Error(fmt.Sprintf("This node was a member of the running cluster (replica %d) and lost its data; it cannot bootstrap again. On a member run: centra cluster member-remove --node-id %d, then %s; this node then joins", v.ReplicaId, cfg.NodeID, addCmd),
						"from_node_id", v.FromNodeId, "replica_id", v.ReplicaId)
				}
				rejoin = true
			}
		case <-reminder.C:
			log.Info("Still waiting for the running cluster to add this node: "+addCmd, "node_id", cfg.NodeID)
		case <-ctx.Done():
			return DiscoverOutcome{}, ctx.Err()
		}
	}
}

// probePeers calls Discover on every peer and returns the addresses where
// something else answers (a running member), with what it said.
func probePeers(ctx context.Context, client *http.Client, cfg DiscoverConfig) []string {
	var running []string
	for id, addr := range cfg.Peers {
		err := callDiscover(ctx, client, cfg.ClientTLS != nil, addr, &chainfirev1.DiscoverRequest{ClusterId: cfg.ClusterID, FromNodeId: cfg.NodeID})
		var op *net.OpError
		switch {
		case err == nil:
			cfg.Log.Debug("Initial member is also starting", "peer_node_id", id, "peer_url", addr)
		case errors.As(err, &op) && op.Op == "dial":
			cfg.Log.Debug("Initial member is down", "peer_node_id", id, "peer_url", addr, "err", err)
		default:
			running = append(running, fmt.Sprintf("node %d (%s)", id, addr))
			cfg.Log.Debug("Initial member runs raft", "peer_node_id", id, "peer_url", addr, "err", err)
		}
	}
	sort.Strings(running)
	return running
}

func callDiscover(ctx context.Context, client *http.Client, tls bool, addr string, req *chainfirev1.DiscoverRequest) error {
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := chainfirev1connect.NewClusterServiceClient(client, scheme+addr, connect.WithGRPC()).Discover(ctx, connect.NewRequest(req))
	return err
}

// runDiscoveryAnswers tells nodes that wait in DiscoverBootstrap at the
// address of a voter what the cluster knows about them. Every member runs
// it, leader or not: the first members of a new cluster have no quorum
// until the others start.
func (s *Server) runDiscoveryAnswers(ctx context.Context) {
	told := map[uint64]chainfirev1.DiscoverVerdict{}
	loop.Every(ctx, discoverInterval, func(time.Time) {
		voters := s.cfg.Raft.LocalVoters(raftnode.MetadataShardID)
		if len(voters) < 2 {
			return
		}
		// Linearizable when a leader is known, else this member's applied
		// copy: the first members of a new cluster have no quorum yet.
		table, err := s.readMembers(ctx, !s.HasLeader())
		if err != nil {
			s.log.Debug("Cannot read the member table to answer starting nodes", "err", err)
			return
		}
		for replica, addr := range voters {
			if replica == s.cfg.ReplicaID {
				continue
			}
			req := &chainfirev1.DiscoverRequest{ClusterId: s.cfg.ClusterID, FromNodeId: s.cfg.NodeID, ReplicaId: replica}
			switch m := memberOfReplica(table, replica); {
			case m == nil: // a bootstrap member (node ID = replica ID) that never published
				req.Verdict, req.NodeId = chainfirev1.DiscoverVerdict_DISCOVER_VERDICT_BOOTSTRAP, replica
			case len(m.ClientUrls) == 0:
				continue // added, not joined yet: the leader's join loop calls Join
			default:
				req.Verdict, req.NodeId = chainfirev1.DiscoverVerdict_DISCOVER_VERDICT_REJOIN, m.NodeId
			}
			if err := callDiscover(ctx, s.fwd.client, s.cfg.ClientTLS != nil, addr, req); err != nil {
				delete(told, replica)
				continue
			}
			if told[replica] == req.Verdict {
				continue
			}
			told[replica] = req.Verdict
			if req.Verdict == chainfirev1.DiscoverVerdict_DISCOVER_VERDICT_REJOIN {
				s.log.Warn(fmt.Sprintf("Member lost its data and restarted with bootstrap = true; remove it and add it again: centra cluster member-remove --node-id %d, then centra cluster member-add --node-id %d --peer-url %s", req.NodeId, req.NodeId, addr),
					"node_id", req.NodeId, "replica_id", replica)
				continue
			}
			s.log.Info("Told an initial member that never started to bootstrap", "node_id", req.NodeId, "peer_url", addr)
		}
	})
}
