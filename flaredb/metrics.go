package flaredb

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/centra-cloud/centra/shared/raftnode"
)

// metrics are a store's FlareDB metrics (names in DESIGN.md).
type metrics struct {
	reads        *prometheus.CounterVec   // mode, replica
	readDur      *prometheus.HistogramVec // op
	writeDur     *prometheus.HistogramVec // op
	requests     *prometheus.CounterVec   // op, result
	applyDur     prometheus.Histogram
	splits       prometheus.Counter
	regionErrors *prometheus.CounterVec // type
	steps        *prometheus.CounterVec // step, result
}

func newMetrics(reg prometheus.Registerer, regionCount func() float64, snaps *raftnode.SnapshotLimits) *metrics {
	buckets := prometheus.ExponentialBuckets(0.0001, 2, 18) // 100µs .. 13s
	m := &metrics{
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flaredb_reads_total",
			Help: "Keys read by this store, by namespace mode (strong, eventual) and by the role of the replica that served them (leader, follower).",
		}, []string{"mode", "replica"}),
		readDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flaredb_read_duration_seconds", Help: "Latency of read requests served by this store.", Buckets: buckets,
		}, []string{"op"}),
		writeDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flaredb_write_duration_seconds", Help: "Latency of write requests (proposal to apply) served by this store.", Buckets: buckets,
		}, []string{"op"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flaredb_requests_total", Help: "KV requests handled by this store, by operation and result (ok, region_error, error).",
		}, []string{"op", "result"}),
		applyDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flaredb_apply_duration_seconds", Help: "Time to apply one batch of committed region entries to pebble.", Buckets: buckets,
		}),
		splits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flaredb_region_splits_total", Help: "Region splits proposed by this store and applied.",
		}),
		regionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flaredb_region_errors_total", Help: "Requests answered with a region error (the client retries), by type.",
		}, []string{"type"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flaredb_operator_steps_total", Help: "PD operator steps this store executed as region leader, by step and result (ok, error).",
		}, []string{"step", "result"}),
	}
	// snap picks the sending or receiving count of a (sending, receiving)
	// pair.
	snap := func(pair func() (int64, int64), sending bool) func() float64 {
		return func() float64 {
			snd, rcv := pair()
			if sending {
				return float64(snd)
			}
			return float64(rcv)
		}
	}
	totals := func() (int64, int64) {
		snd, rcv := snaps.Totals()
		return int64(snd), int64(rcv)
	}
	var snapMetrics []prometheus.Collector
	for _, dir := range []string{"sending", "receiving"} {
		labels := prometheus.Labels{"direction": dir}
		snapMetrics = append(snapMetrics,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flaredb_snapshots_in_flight", Help: "Region snapshot streams this store is sending or receiving now.", ConstLabels: labels},
				snap(snaps.InFlight, dir == "sending")),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flaredb_snapshots_total", Help: "Region snapshot streams this store sent or received completely.", ConstLabels: labels},
				snap(totals, dir == "sending")))
	}
	reg.MustRegister(m.reads, m.readDur, m.writeDur, m.requests, m.applyDur, m.splits, m.regionErrors, m.steps,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flaredb_region_count", Help: "Region replicas hosted by this store."}, regionCount))
	reg.MustRegister(snapMetrics...)
	return m
}

func (m *metrics) observeApply(d time.Duration) { m.applyDur.Observe(d.Seconds()) }
