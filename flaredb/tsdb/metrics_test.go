package tsdb

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"

	"github.com/centra-cloud/centra/flaredb/tsdb/tsdbtest"
)

// TestObservability checks the metrics of ingest and queries and the
// runbook's query log line.
func TestObservability(t *testing.T) {
	now := time.Now()
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	db, err := New(Config{KV: tsdbtest.NewMemKV(), Namespace: "ts", Retention: 24 * time.Hour, OutOfOrderWindow: 10 * time.Minute,
		WriteTimeout: 30 * time.Second, Logger: log, Registry: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewAPI(db, APIConfig{MaxSamples: 1e6, Timeout: time.Minute, Logger: log, Registry: reg}).Handler())
	defer srv.Close()
	var req prompb.WriteRequest
	for _, job := range []string{"a", "b", "c"} {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: job}},
			Samples: []prompb.Sample{{Timestamp: now.UnixMilli() - 2000, Value: 1}, {Timestamp: now.UnixMilli() - 1000, Value: 1}},
		})
	}
	raw, _ := req.Marshal()
	if resp := post(t, srv, "/api/v1/write", "application/x-protobuf", snappy.Encode(nil, raw)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("write: %d", resp.StatusCode)
	}
	if code, out := getJSON(t, srv, "/api/v1/query", url.Values{"query": {"up"}, "time": {jsonNum(float64(now.UnixMilli()) / 1000)}}); code != 200 {
		t.Fatalf("query: %d %v", code, out)
	}
	if !regexp.MustCompile(`msg="Handled query, rows=3, latency=\d+ms"`).Match(logs.Bytes()) {
		t.Errorf("no runbook query line in the log:\n%s", logs.String())
	}

	want := map[string]float64{
		"flaredb_tsdb_active_series":          3,
		"flaredb_tsdb_samples_ingested_total": 6,
		"flaredb_tsdb_series_created_total":   3,
		"flaredb_tsdb_query_duration_seconds": 1, // observations
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			got[mf.GetName()] += metricValue(m)
		}
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	now = now.Add(activeWindow + time.Second)
	if n := db.activeSeries(); n != 0 {
		t.Errorf("%v active series an hour after the last write, want 0", n)
	}
}

// metricValue is a counter's or gauge's value, or a histogram's count.
func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}
