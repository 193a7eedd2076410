package chainfire

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/centra-cloud/centra/shared/raftnode"
)

// metrics are Chainfire's Prometheus metrics, with the names the
// troubleshooting runbook queries.
type metrics struct {
	writeDuration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		writeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chainfire_write_duration_seconds",
			Help:    "Time from proposing a write to the metadata shard until it is applied, by outcome (ok or error).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"outcome"}),
	}
	for _, c := range []prometheus.Collector{m.writeDuration, &raftCollector{s: s}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observeWrite(d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.writeDuration.WithLabelValues(outcome).Observe(d.Seconds())
}

var (
	descRaftIndex = prometheus.NewDesc("chainfire_raft_index",
		"Commit index of the metadata shard's raft log on this node; role is this node's role (leader, follower or learner).", []string{"role"}, nil)
	descRaftTerm = prometheus.NewDesc("chainfire_raft_term",
		"Current raft term of the metadata shard as seen by this node.", nil, nil)
	descHasLeader = prometheus.NewDesc("chainfire_has_leader",
		"1 when this node knows a leader of the metadata shard, 0 otherwise.", nil, nil)
	descApplied = prometheus.NewDesc("chainfire_applied_index",
		"Last raft log index applied to the state machine on this node.", nil, nil)
	descRevision = prometheus.NewDesc("chainfire_revision",
		"Newest MVCC revision of the key-value store on this node.", nil, nil)
)

// raftCollector reads the raft status at scrape time.
type raftCollector struct{ s *Server }

func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftIndex, descRaftTerm, descHasLeader, descApplied, descRevision, descFollowerLag} {
		ch <- d
	}
}

func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ch <- prometheus.MustNewConstMetric(descRevision, prometheus.GaugeValue, float64(c.s.Revision()))
	c.s.lag.collect(ch)
	st, err := c.s.cfg.Raft.Status(ctx, raftnode.MetadataShardID)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descRaftIndex, err)
		return
	}
	role := "follower"
	switch {
	case st.IsNonVoting:
		role = "learner"
	case st.LeaderID != 0 && st.LeaderID == st.ReplicaID:
		role = "leader"
	}
	hasLeader := 0.0
	if st.LeaderID != 0 {
		hasLeader = 1
	}
	ch <- prometheus.MustNewConstMetric(descRaftIndex, prometheus.GaugeValue, float64(st.CommitIndex), role)
	ch <- prometheus.MustNewConstMetric(descRaftTerm, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(descHasLeader, prometheus.GaugeValue, hasLeader)
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(st.AppliedIndex))
}
