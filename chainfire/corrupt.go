package chainfire

import (
	"context"
	"time"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/shared/loop"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// defaultCorruptCheckInterval is how often the leader compares its HashKV
// with every member's (etcd's periodic corruption check).
const defaultCorruptCheckInterval = 5 * time.Minute

// peerHash is one member's answer to HashKV at the leader's revision.
type peerHash struct {
	member uint64
	resp   *etcdserverpb.HashKVResponse
	err    error
}

// mismatched returns the members whose hash differs from the leader's at the
// same revision and compact revision. Members that could not answer, had
// not applied the revision yet, or compacted differently are not judged (as
// etcd's check).
func mismatched(local stateHash, answers []peerHash) []uint64 {
	var out []uint64
	for _, a := range answers {
		if a.err != nil || a.resp.HashRevision != local.rev || a.resp.CompactRevision != local.compacted {
			continue
		}
		if a.resp.Hash != local.hash {
			out = append(out, a.member)
		}
	}
	return out
}

// runCorruptCheck runs the corruption check on the leader every interval
// until ctx ends.
func (s *Server) runCorruptCheck(ctx context.Context) {
	if s.cfg.CorruptCheckInterval < 0 {
		return
	}
	loop.Every(ctx, s.cfg.CorruptCheckInterval, func(time.Time) {
		if leader, _, ok := s.cfg.Raft.Leader(raftnode.MetadataShardID); ok && leader == s.cfg.ReplicaID {
			s.checkCorruption(ctx)
		}
	})
}

// checkCorruption compares this member's HashKV with every other member's
// at the same revision and raises CORRUPT for each member that differs:
// replicas that applied the same log must hold the same data.
func (s *Server) checkCorruption(ctx context.Context) {
	local, err := s.fsm.hashKV(0)
	if err != nil {
		s.log.Warn("Corruption check skipped: cannot hash the local state", "err", err)
		return
	}
	ms, err := s.members(ctx)
	if err != nil {
		s.log.Debug("Corruption check skipped: cannot list members", "err", err)
		return
	}
	// HashKV needs the root role while auth is enabled.
	tok, err := s.memberToken(ctx)
	if err != nil {
		s.log.Debug("Corruption check skipped: cannot log in to the other members", "err", err)
		return
	}
	var answers []peerHash
	for _, m := range ms {
		if m.NodeId == s.cfg.NodeID || len(m.ClientUrls) == 0 {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		req := connect.NewRequest(&etcdserverpb.HashKVRequest{Revision: local.rev})
		if tok != "" {
			req.Header().Set(tokenHeader, tok)
		}
		r, err := etcdserverpbconnect.NewMaintenanceClient(s.fwd.client, m.ClientUrls[0], connect.WithGRPC()).HashKV(cctx, req)
		cancel()
		a := peerHash{member: m.NodeId, err: err}
		if err == nil {
			a.resp = r.Msg
		}
		answers = append(answers, a)
	}
	for _, id := range mismatched(local, answers) {
		s.log.Error("Corruption check: a member's data differs from the leader's at the same revision; raising the CORRUPT alarm (writes stop until the member is rebuilt and the alarm disarmed)",
			"member_id", id, "revision", local.rev, "leader_hash", local.hash)
		if err := s.raiseAlarmFor(ctx, id, alarmCorrupt); err != nil {
			s.log.Error("Raising the CORRUPT alarm failed", "member_id", id, "err", err)
		}
	}
}
