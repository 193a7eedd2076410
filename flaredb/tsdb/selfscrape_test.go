package tsdb

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

// TestScrapeOnce writes a registry's metrics as a Prometheus scrape
// would store them: instance and job on every series, the metric's own
// job label as exported_job, histograms as _bucket/_sum/_count, up = 1,
// one timestamp.
func TestScrapeOnce(t *testing.T) {
	now := time.Now()
	db, _ := newTestDB(t, &now)
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jobs_done_total", Help: "h"}, []string{"job"})
	c.WithLabelValues("backup").Add(3)
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "op_seconds", Help: "h", Buckets: []float64{0.1, 1}})
	h.Observe(0.5)
	reg.MustRegister(c, h)
	cfg := SelfScrape{Gatherer: reg, Interval: time.Second, Instance: "10.0.0.1:2379", Job: "chainfire"}
	if err := db.scrapeOnce(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	ts := now.UnixMilli()
	got := selectAll(t, db, ts-1, ts+1, labels.MustNewMatcher(labels.MatchEqual, "instance", "10.0.0.1:2379"))
	want := map[string]float64{
		`{__name__="up", instance="10.0.0.1:2379", job="chainfire"}`:                                     1,
		`{__name__="jobs_done_total", exported_job="backup", instance="10.0.0.1:2379", job="chainfire"}`: 3,
		`{__name__="op_seconds_bucket", instance="10.0.0.1:2379", job="chainfire", le="0.1"}`:            0,
		`{__name__="op_seconds_bucket", instance="10.0.0.1:2379", job="chainfire", le="1"}`:              1,
		`{__name__="op_seconds_bucket", instance="10.0.0.1:2379", job="chainfire", le="+Inf"}`:           1,
		`{__name__="op_seconds_sum", instance="10.0.0.1:2379", job="chainfire"}`:                         0.5,
		`{__name__="op_seconds_count", instance="10.0.0.1:2379", job="chainfire"}`:                       1,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if s := got[k]; len(s) != 1 || s[0].t != ts || s[0].v != v {
			t.Errorf("%s: %v, want one sample %v at %d", k, s, v, ts)
		}
	}
}
