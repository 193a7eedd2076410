package chainfire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/lni/dragonboat/v4"

	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	chainfirev1 "github.com/centra-cloud/centra/gen/centra/chainfire/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// learnerReadyRatio is how far a learner must have applied, relative to the
// commit index, before it may be promoted (etcd's rule: 90%).
const learnerReadyRatio = 0.9

// memberView is the membership as operators see it: the raft membership of
// the metadata shard (authoritative for who votes) joined with the member
// table (node IDs, names, URLs). Bootstrap members that have not published
// yet appear with node ID = replica ID.
func (s *Server) memberView(ctx context.Context) ([]*chainfirev1.Member, *dragonboat.Membership, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	ms, err := s.cfg.Raft.Membership(ctx, raftnode.MetadataShardID)
	if err != nil {
		return nil, nil, err
	}
	table, err := s.members(ctx)
	if err != nil {
		return nil, nil, err
	}
	var out []*chainfirev1.Member
	add := func(replicas map[uint64]string, learner bool) {
		for id, addr := range replicas {
			m := &chainfirev1.Member{NodeId: id, ReplicaId: id, PeerUrls: []string{addr}, IsLearner: learner}
			if a := memberOfReplica(table, id); a != nil {
				m.NodeId, m.Name, m.ClientUrls = a.NodeId, a.Name, a.ClientUrls
			}
			out = append(out, m)
		}
	}
	add(ms.Nodes, false)
	add(ms.NonVotings, true)
	// Members added to the table whose raft change has not landed yet.
	// Records of removed replicas (a crash between the raft removal and the
	// table update, or a forced new cluster) are stale: skipped here,
	// replaced by member-add.
	for _, a := range table {
		if isRemoved(ms, a.ReplicaId) {
			continue
		}
		if !slices.ContainsFunc(out, func(m *chainfirev1.Member) bool { return m.NodeId == a.NodeId }) {
			out = append(out, &chainfirev1.Member{NodeId: a.NodeId, ReplicaId: a.ReplicaId, Name: a.Name, PeerUrls: a.PeerUrls, ClientUrls: a.ClientUrls, IsLearner: a.IsLearner})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeId < out[j].NodeId })
	return out, ms, nil
}

func findMember(ms []*chainfirev1.Member, nodeID uint64) *chainfirev1.Member {
	for _, m := range ms {
		if m.NodeId == nodeID {
			return m
		}
	}
	return nil
}

// normalizePeerURL accepts "host:port" or "http(s)://host:port" and returns
// "host:port", the form raft addresses take.
func normalizePeerURL(u string) (string, error) {
	u = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(u), "http://"), "https://")
	u = strings.TrimSuffix(u, "/")
	host, port, err := net.SplitHostPort(u)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("peer URL %q: want HOST:PORT, e.g. 10.0.0.4:2380", u)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("peer URL %q: %s is not an address other members can dial", u, host)
	}
	return u, nil
}

// AddMember adds a node to the metadata shard. The node gets a fresh replica
// ID (recorded in the member table through raft), then the raft membership
// change is made; if that fails the table entry is rolled back, so nothing
// is half-applied. The leader then hands the node its replica ID through
// the join handshake (runJoiner) once the node listens on its peer URL.
//
// pending is "" when the node answered the handshake within joinWait, else
// "added; node N has not connected yet: <last handshake error>" (the
// leader's join loop keeps trying).
func (s *Server) AddMember(ctx context.Context, nodeID uint64, peerURL string, learner bool) (_ *chainfirev1.Member, _ []*chainfirev1.Member, pending string, err error) {
	defer func() { err = s.noLeaderHint("member-add", err) }()
	if nodeID == 0 {
		return nil, nil, "", connect.NewError(connect.CodeInvalidArgument, errors.New("chainfire: --node-id must be >= 1"))
	}
	peerURL, err = normalizePeerURL(peerURL)
	if err != nil {
		return nil, nil, "", connect.NewError(connect.CodeInvalidArgument, err)
	}
	if err := s.lockMembers(ctx); err != nil {
		return nil, nil, "", err
	}
	defer s.memberMu.Unlock()
	view, ms, err := s.memberView(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	if m := findMember(view, nodeID); m != nil {
		return nil, nil, "", fmt.Errorf("%w: node %d is already a member (replica %d, peer %s); remove it first to re-add it", ErrMemberExists, nodeID, m.ReplicaId, strings.Join(m.PeerUrls, ","))
	}
	for _, m := range view {
		if slices.Contains(m.PeerUrls, peerURL) {
			return nil, nil, "", fmt.Errorf("%w: %s is the peer URL of node %d", ErrPeerURLExists, peerURL, m.NodeId)
		}
	}
	// A stale record (its replica was removed) would block the re-add.
	table, err := s.members(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	if stale := find(table, nodeID); stale != nil && isRemoved(ms, stale.ReplicaId) {
		if err := s.propose(ctx, &raftcmdv1.Command{Cmd: &raftcmdv1.Command_MemberRemove{MemberRemove: &raftcmdv1.MemberRemove{NodeId: nodeID}}}); err != nil {
			return nil, nil, "", err
		}
	}
	var floor uint64
	for _, set := range []map[uint64]string{ms.Nodes, ms.NonVotings, ms.Witnesses} {
		for id := range set {
			floor = max(floor, id)
		}
	}
	for id := range ms.Removed {
		floor = max(floor, id)
	}
	res, err := s.proposeResult(ctx, &raftcmdv1.Command{Cmd: &raftcmdv1.Command_MemberAdd{MemberAdd: &raftcmdv1.MemberAdd{
		NodeId: nodeID, PeerUrl: peerURL, IsLearner: learner, ReplicaIdFloor: floor,
	}}})
	if err != nil {
		return nil, nil, "", err
	}
	added, err := resultAs[raftcmdv1.MemberAttributes](res)
	if err != nil {
		return nil, nil, "", err
	}
	// Voters too join as non-voting replicas and are promoted by the
	// leader once caught up (runJoiner): adding a voter that is not running
	// yet would raise the quorum and could leave the cluster without one.
	cctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err = s.cfg.Raft.AddNonVoting(cctx, raftnode.MetadataShardID, added.ReplicaId, peerURL); err != nil {
		if rerr := s.propose(context.Background(), &raftcmdv1.Command{Cmd: &raftcmdv1.Command_MemberRemove{MemberRemove: &raftcmdv1.MemberRemove{NodeId: nodeID}}}); rerr != nil {
			s.log.Error("Rolling back a failed member-add failed; remove the member by hand", "node_id", nodeID, "err", rerr)
		}
		return nil, nil, "", fmt.Errorf("chainfire: raft refused to add replica %d at %s: %w", added.ReplicaId, peerURL, err)
	}
	s.log.Info("Member added", "node_id", nodeID, "replica_id", added.ReplicaId, "peer_url", peerURL, "learner", learner)
	if herr := s.awaitJoin(ctx, nodeID, added.ReplicaId, peerURL); herr != nil {
		pending = fmt.Sprintf("added; node %d has not connected yet: %v", nodeID, herr)
		s.log.Warn(fmt.Sprintf("Added node %d, but it has not answered the join handshake at %s: %v; start it (bootstrap = false, or its original config) and check that it listens there with this cluster's TLS settings; it joins once it answers", nodeID, peerURL, herr),
			"node_id", nodeID, "replica_id", added.ReplicaId, "peer_url", peerURL)
	}
	m := &chainfirev1.Member{NodeId: nodeID, ReplicaId: added.ReplicaId, PeerUrls: []string{peerURL}, IsLearner: learner}
	view, _, err = s.memberView(ctx)
	return m, view, pending, err
}

// ForgetOtherMembers deletes every member record but this node's. After a
// forced new cluster this node is the only member of the metadata shard
// (raft removed every other replica) and the member table must say the
// same, so that member-list shows this node alone and every other node ID
// can be added again. It retries until this node leads the shard (it is
// the only voter) or ctx ends; call it after Start and before serving
// requests, so that no member-add runs meanwhile.
func (s *Server) ForgetOtherMembers(ctx context.Context) error {
	s.memberMu.Lock()
	defer s.memberMu.Unlock()
	for {
		err := s.forgetOthers(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chainfire: forget the members of the old cluster: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Server) forgetOthers(ctx context.Context) error {
	table, err := s.members(ctx)
	if err != nil {
		return err
	}
	for _, m := range table {
		if m.NodeId == s.cfg.NodeID {
			continue
		}
		err := s.propose(ctx, &raftcmdv1.Command{Cmd: &raftcmdv1.Command_MemberRemove{MemberRemove: &raftcmdv1.MemberRemove{NodeId: m.NodeId}}})
		if err != nil && !errors.Is(err, ErrMemberNotFound) {
			return err
		}
		s.log.Info("Forgot a member of the old cluster", "node_id", m.NodeId, "replica_id", m.ReplicaId)
	}
	return nil
}

// RemoveMember removes a node from the metadata shard. It refuses to remove
// the last voter, a change that leaves fewer healthy voters than a quorum,
// and the member serving the request (ask another member).
func (s *Server) RemoveMember(ctx context.Context, nodeID uint64) (_ []*chainfirev1.Member, err error) {
	defer func() { err = s.noLeaderHint("member-remove", err) }()
	if err := s.lockMembers(ctx); err != nil {
		return nil, err
	}
	defer s.memberMu.Unlock()
	view, _, err := s.memberView(ctx)
	if err != nil {
		return nil, err
	}
	target := findMember(view, nodeID)
	switch {
	case target == nil:
		return nil, fmt.Errorf("%w: node %d", ErrMemberNotFound, nodeID)
	case target.ReplicaId == s.cfg.ReplicaID:
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("chainfire: node %d is the member serving this request; send member-remove to another member", nodeID))
	}
	if !target.IsLearner {
		if err := s.checkQuorumWithout(ctx, view, target); err != nil {
			return nil, err
		}
	}
	cctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := s.cfg.Raft.RemoveReplica(cctx, raftnode.MetadataShardID, target.ReplicaId); err != nil {
		return nil, err
	}
	err = s.propose(ctx, &raftcmdv1.Command{Cmd: &raftcmdv1.Command_MemberRemove{MemberRemove: &raftcmdv1.MemberRemove{NodeId: nodeID}}})
	if err != nil && !errors.Is(err, ErrMemberNotFound) {
		return nil, err
	}
	s.log.Info("Member removed", "node_id", nodeID, "replica_id", target.ReplicaId)
	view, _, err = s.memberView(ctx)
	return view, err
}

// lockMembers takes memberMu, waiting a moment for a change already in
// progress through this member (the leader's join loop holds it briefly to
// promote a new voter) before it gives up with ErrConfigChangeInFlight.
func (s *Server) lockMembers(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for !s.memberMu.TryLock() {
		select {
		case <-ctx.Done():
			return ErrConfigChangeInFlight
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// noLeaderHint turns a membership change that failed for want of a leader
// into an error (and a log line) that names the ways out: start the
// members that are down, or, when a quorum is lost for good (the
// split-brain procedure restarts one member alone), force a new cluster on
// the member with the highest raft_index. The message keeps etcd's
// "etcdserver: no leader" in front for etcd clients.
func (s *Server) noLeaderHint(op string, err error) error {
	if err == nil || !errors.Is(translate(err), ErrNoLeader) {
		return err
	}
	voters := s.cfg.Raft.LocalVoters(raftnode.MetadataShardID)
	hint := fmt.Sprintf("%s needs a leader, and this member knows %d voters without a quorum of them reachable. If the others are only down, start them. If they are lost for good (split-brain recovery), stop this member and restart the member with the highest raft_index (chainfire-client status) with --force-new-cluster (centra serve --force-new-cluster, or chainfire-server --force-new-cluster); it becomes the only member, then member-add the others", op, len(voters))
	s.log.Warn("Membership change failed: no leader; "+hint, "op", op, "voters", len(voters))
	return fmt.Errorf("%w: %s", ErrNoLeader, hint)
}

// checkQuorumWithout refuses removing voter target when the remaining voters
// that answer a status probe are fewer than their quorum.
func (s *Server) checkQuorumWithout(ctx context.Context, view []*chainfirev1.Member, target *chainfirev1.Member) error {
	var rest []*chainfirev1.Member
	for _, m := range view {
		if !m.IsLearner && m.NodeId != target.NodeId {
			rest = append(rest, m)
		}
	}
	if len(rest) == 0 {
		return fmt.Errorf("%w: node %d is the last voter", ErrUnhealthy, target.NodeId)
	}
	healthy := 0
	for _, m := range rest {
		if m.ReplicaId == s.cfg.ReplicaID || s.probe(ctx, m) == nil {
			healthy++
		}
	}
	if quorum := len(rest)/2 + 1; healthy < quorum {
		return fmt.Errorf("%w: after removing node %d only %d of the %d remaining voters are healthy, fewer than a quorum of %d", ErrUnhealthy, target.NodeId, healthy, len(rest), quorum)
	}
	return nil
}

// probe asks a member's API for its status.
func (s *Server) probe(ctx context.Context, m *chainfirev1.Member) error {
	_, err := s.memberStatus(ctx, m)
	return err
}

func (s *Server) memberStatus(ctx context.Context, m *chainfirev1.Member) (*etcdserverpb.StatusResponse, error) {
	if len(m.ClientUrls) == 0 {
		return nil, fmt.Errorf("node %d has not published its API address", m.NodeId)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := etcdserverpbconnect.NewMaintenanceClient(s.fwd.client, m.ClientUrls[0], connect.WithGRPC()).Status(ctx, connect.NewRequest(&etcdserverpb.StatusRequest{}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// PromoteMember makes a learner a voter once it has caught up.
func (s *Server) PromoteMember(ctx context.Context, nodeID uint64) (_ *chainfirev1.Member, err error) {
	defer func() { err = s.noLeaderHint("member-promote", err) }()
	if err := s.lockMembers(ctx); err != nil {
		return nil, err
	}
	defer s.memberMu.Unlock()
	return s.promote(ctx, nodeID)
}

// promote does PromoteMember's work; the caller holds memberMu.
func (s *Server) promote(ctx context.Context, nodeID uint64) (*chainfirev1.Member, error) {
	view, _, err := s.memberView(ctx)
	if err != nil {
		return nil, err
	}
	m := findMember(view, nodeID)
	switch {
	case m == nil:
		return nil, fmt.Errorf("%w: node %d", ErrMemberNotFound, nodeID)
	case !m.IsLearner:
		return nil, fmt.Errorf("%w: node %d already votes", ErrMemberNotLearner, nodeID)
	}
	st, err := s.status(ctx)
	if err != nil {
		return nil, err
	}
	ls, err := s.memberStatus(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot reach learner node %d to check its progress: %v", ErrLearnerNotReady, nodeID, err)
	}
	if float64(ls.RaftAppliedIndex) < learnerReadyRatio*float64(st.RaftIndex) {
		return nil, fmt.Errorf("%w: node %d applied %d of %d entries (%.0f%%); wait for it to catch up (member-promote --wait does)",
			ErrLearnerNotReady, nodeID, ls.RaftAppliedIndex, st.RaftIndex, 100*float64(ls.RaftAppliedIndex)/float64(max(st.RaftIndex, 1)))
	}
	cctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := s.cfg.Raft.AddReplica(cctx, raftnode.MetadataShardID, m.ReplicaId, m.PeerUrls[0]); err != nil {
		return nil, err
	}
	err = s.propose(ctx, &raftcmdv1.Command{Cmd: &raftcmdv1.Command_MemberPromote{MemberPromote: &raftcmdv1.MemberPromote{NodeId: nodeID}}})
	if err != nil && !errors.Is(err, ErrMemberNotFound) && !errors.Is(err, ErrMemberNotLearner) {
		return nil, err
	}
	s.log.Info("Member promoted to voter", "node_id", nodeID, "replica_id", m.ReplicaId)
	m.IsLearner = false
	return m, nil
}

// TransferLeader hands the metadata shard's leadership to a voter.
func (s *Server) TransferLeader(ctx context.Context, nodeID uint64) (uint64, error) {
	view, _, err := s.memberView(ctx)
	if err != nil {
		return 0, err
	}
	m := findMember(view, nodeID)
	switch {
	case m == nil:
		return 0, fmt.Errorf("%w: node %d", ErrMemberNotFound, nodeID)
	case m.IsLearner:
		return 0, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("chainfire: node %d is a learner; only voters can lead", nodeID))
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := s.cfg.Raft.TransferLeader(ctx, raftnode.MetadataShardID, m.ReplicaId); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("%w: leadership did not move to node %d in time; is it running and caught up?", ErrTimeout, nodeID)
		}
		return 0, err
	}
	return nodeID, nil
}

func isRemoved(ms *dragonboat.Membership, replicaID uint64) bool {
	_, ok := ms.Removed[replicaID]
	return ok
}

// MemberList returns the members as operators see them (see memberView).
func (s *Server) MemberList(ctx context.Context) ([]*chainfirev1.Member, error) {
	view, _, err := s.memberView(ctx)
	return view, err
}
