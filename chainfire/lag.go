package chainfire

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	chainfirev1 "github.com/centra-cloud/centra/gen/centra/chainfire/v1"
	"github.com/centra-cloud/centra/shared/loop"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// Follower lag, the leader's view (chainfire_raft_follower_lag and the
// "behind"/"caught up" log lines the troubleshooting runbook greps for).
//
// dragonboat keeps each follower's match index inside raft and exports no
// way to read it, so the leader measures lag itself: every lagInterval it
// asks each member's Status RPC (the one `chainfire-client status` uses) for
// its commit index and subtracts it from its own. That is one small RPC per
// member per interval, made only by the leader. A member that does not
// answer keeps its last answer, so its lag grows while the leader commits.
const (
	lagInterval = 2 * time.Second
	// lagBehind is the lag, in entries, from which a follower is logged as
	// behind; it is logged as caught up again once back under lagCaughtUp.
	lagBehind   = 100
	lagCaughtUp = 10
)

// lagTracker holds the leader's latest measurement per member node ID.
type lagTracker struct {
	mu     sync.Mutex
	known  map[uint64]uint64 // node ID -> last commit index it reported
	lag    map[uint64]uint64 // node ID -> lag in entries (leader only)
	behind map[uint64]bool   // node IDs logged as behind
}

var descFollowerLag = prometheus.NewDesc("chainfire_raft_follower_lag",
	"Entries of the metadata shard's log that a member has not committed yet, as the leader measures it every 2 s (its commit index minus the member's); exported by the leader only, one series per other member (node ID).",
	[]string{"member"}, nil)

// collect exports the latest lags (nothing unless this node leads).
func (t *lagTracker) collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, lag := range t.lag {
		ch <- prometheus.MustNewConstMetric(descFollowerLag, prometheus.GaugeValue, float64(lag), strconv.FormatUint(id, 10))
	}
}

// monitorLag measures the followers' lag while this node leads.
func (s *Server) monitorLag(ctx context.Context) {
	loop.Every(ctx, lagInterval, func(time.Time) {
		leader, _, ok := s.cfg.Raft.Leader(raftnode.MetadataShardID)
		if !ok || leader != s.cfg.ReplicaID {
			s.lag.reset()
			return
		}
		if err := s.measureLag(ctx); err != nil {
			s.log.Debug("Measuring follower lag failed", "err", err)
		}
	})
}

func (t *lagTracker) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.known, t.lag, t.behind = nil, nil, nil
}

// measureLag asks every other member for its commit index.
func (s *Server) measureLag(ctx context.Context) error {
	st, err := s.status(ctx)
	if err != nil {
		return err
	}
	view, _, err := s.memberView(ctx)
	if err != nil {
		return err
	}
	lag := map[uint64]uint64{}
	for _, m := range view {
		if m.NodeId == s.cfg.NodeID {
			continue
		}
		ms, err := s.memberStatus(ctx, m)
		s.lag.mu.Lock()
		if err == nil {
			if s.lag.known == nil {
				s.lag.known = map[uint64]uint64{}
			}
			s.lag.known[m.NodeId] = ms.RaftIndex
		}
		idx, ok := s.lag.known[m.NodeId]
		s.lag.mu.Unlock()
		if !ok {
			s.log.Debug("Cannot measure the lag of a member that never answered", "member", m.NodeId, "err", err)
			continue
		}
		lag[m.NodeId] = st.RaftIndex - min(idx, st.RaftIndex)
		s.logLag(m.NodeId, lag[m.NodeId], err)
	}
	s.lag.mu.Lock()
	s.lag.lag = lag
	s.lag.mu.Unlock()
	return nil
}

// logLag logs a member that fell behind and, later, that it caught up.
func (s *Server) logLag(id, lag uint64, statusErr error) {
	log := s.cfg.Logger.With("component", "chainfire_raft")
	s.lag.mu.Lock()
	if s.lag.behind == nil {
		s.lag.behind = map[uint64]bool{}
	}
	was := s.lag.behind[id]
	now := lag >= lagBehind || (was && lag >= lagCaughtUp)
	s.lag.behind[id] = now
	s.lag.mu.Unlock()
	switch {
	case now && !was && statusErr != nil:
		log.Warn(fmt.Sprintf("Follower is behind the leader, member=%d, lag=%d entries", id, lag), "status_err", statusErr)
	case now && !was:
		log.Warn(fmt.Sprintf("Follower is behind the leader, member=%d, lag=%d entries; it is catching up", id, lag))
	case was && !now:
		log.Info(fmt.Sprintf("Follower caught up with the leader, member=%d, lag=%d entries", id, lag))
	}
}

// reportCatchUp is the lag seen from the member's own side, so that the
// runbook's `grep -i 'lag\|behind\|catch.*up'` on a new or restarted node
// finds its progress: every line names "lag", "behind" or "catching up"
// (the leader's lines above are on the leader). It compares the applied
// index the member started from (Config.StartAppliedIndex, read before the
// leader could send it anything) with the leader's commit index, asked
// from the leader's Status RPC. A member that started lagBehind or more
// entries behind logs that it is catching up, its progress every
// lagInterval, and when it is back within lagCaughtUp of the leader; a
// member that started (nearly) current logs nothing. It stops there, and
// also when this member is the leader.
func (s *Server) reportCatchUp(ctx context.Context) {
	log := s.cfg.Logger.With("component", "chainfire_raft")
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	start := s.cfg.StartAppliedIndex
	began := time.Now()
	var (
		behindLogged bool      // the "started behind" line was logged
		lastLine     time.Time // when a progress line was last logged
	)
	check := func(now time.Time) {
		st, err := s.status(ctx)
		if err != nil || st.Leader == 0 {
			return
		}
		if st.Leader == s.cfg.NodeID {
			stop() // nothing to catch up on the leader
			return
		}
		url, err := s.leaderURL(ctx)
		if err != nil {
			return // the leader's address is not applied here yet
		}
		ls, err := s.memberStatus(ctx, &chainfirev1.Member{NodeId: st.Leader, ClientUrls: []string{url}})
		if err != nil {
			return
		}
		behind := ls.RaftIndex - min(st.RaftAppliedIndex, ls.RaftIndex)
		if !behindLogged {
			if ls.RaftIndex-min(start, ls.RaftIndex) < lagBehind {
				stop() // started current
				return
			}
			log.Warn(fmt.Sprintf("This member started behind the leader and is catching up, applied=%d, leader_index=%d, behind=%d entries", start, ls.RaftIndex, ls.RaftIndex-start))
			behindLogged, lastLine = true, now
		}
		switch {
		case behind < lagCaughtUp:
			log.Info(fmt.Sprintf("This member caught up with the leader, lag=%d entries, applied=%d, leader_index=%d, took=%s", behind, st.RaftAppliedIndex, ls.RaftIndex, now.Sub(began).Round(time.Millisecond)))
			stop()
		case now.Sub(lastLine) >= lagInterval:
			log.Info(fmt.Sprintf("Catching up with the leader, lag=%d entries, applied=%d, leader_index=%d", behind, st.RaftAppliedIndex, ls.RaftIndex))
			lastLine = now
		}
	}
	check(time.Now())
	loop.Every(ctx, lagInterval/4, check)
}
