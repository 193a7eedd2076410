package raftnode

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Operation labels used by the request metrics.
const (
	opPropose    = "propose"
	opRead       = "read"
	opMembership = "membership"
)

// metrics are the Node's collectors. They always exist; they are registered
// only when Config.Registerer is set.
type metrics struct {
	requestDuration *prometheus.HistogramVec
	retries         *prometheus.CounterVec
	failures        *prometheus.CounterVec
	leaderChanges   prometheus.Counter
	redials         prometheus.Counter
	handshakeFails  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "raftnode_request_duration_seconds",
			Help:    "Latency of successful raft requests (propose: until applied locally; read: ReadIndex plus lookup), by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"op"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftnode_request_retries_total",
			Help: "Raft requests retried after an error that guarantees the request was not committed (busy, dropped, not ready), by operation.",
		}, []string{"op"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raftnode_request_failures_total",
			Help: "Raft requests that failed, by operation and reason (no_leader, timeout, closed, other).",
		}, []string{"op", "reason"}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftnode_leader_changes_total",
			Help: "Leader changes (including leader lost) observed by the local replicas.",
		}),
		redials: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftnode_transport_redials_total",
			Help: "Raft message connections dialled again before a send because the peer had closed them (it restarted or stopped); each would have lost a message batch before.",
		}),
		handshakeFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftnode_transport_handshake_failures_total",
			Help: "Inbound raft connections whose TLS handshake failed (a peer's certificate not signed by this node's CA, or a peer that does not trust this node's certificate); the log names the peer and the error.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.requestDuration, m.retries, m.failures, m.leaderChanges, m.redials, m.handshakeFails}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("%w: Registerer: %w (pass a fresh per-process registry)", ErrInvalidConfig, err)
		}
	}
	return m, nil
}
