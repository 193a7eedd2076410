package tsdb

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	samples       *prometheus.CounterVec
	seriesCreated prometheus.Counter
	writeErrors   *prometheus.CounterVec
	queryDuration *prometheus.HistogramVec
	compacted     prometheus.Counter
}

// newMetrics registers the TSDB's metrics; active counts the active
// series.
func newMetrics(reg prometheus.Registerer, active func() float64) (*metrics, error) {
	m := &metrics{
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flaredb_tsdb_samples_ingested_total",
			Help: "Float samples acknowledged to remote-write clients, by path: raw (open window) or late (merged into a closed window's chunk).",
		}, []string{"path"}),
		seriesCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flaredb_tsdb_series_created_total",
			Help: "Series added to the catalogue by this node.",
		}),
		writeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flaredb_tsdb_write_requests_failed_total",
			Help: "Remote-write requests refused, by reason: bad_request (4xx, dropped by the sender) or storage (5xx, retried).",
		}, []string{"reason"}),
		queryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flaredb_tsdb_query_duration_seconds",
			Help:    "Duration of query API requests, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"endpoint"}),
		compacted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flaredb_tsdb_compacted_samples_total",
			Help: "Raw samples merged into chunks by the compactor.",
		}),
	}
	activeSeries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flaredb_tsdb_active_series",
		Help: "Series this node wrote a sample of in the last hour (Prometheus's head series; nodes sharing the remote-write traffic each count theirs).",
	}, active)
	for _, c := range []prometheus.Collector{m.samples, m.seriesCreated, m.writeErrors, m.queryDuration, m.compacted, activeSeries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
