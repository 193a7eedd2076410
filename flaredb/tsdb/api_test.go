package tsdb

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

func newTestAPI(t *testing.T) (*httptest.Server, time.Time) {
	now := time.Now()
	db, _ := newTestDB(t, &now)
	srv := httptest.NewServer(NewAPI(db, APIConfig{MaxSamples: 1e6, Timeout: time.Minute}).Handler())
	t.Cleanup(srv.Close)
	return srv, now
}

func post(t *testing.T, srv *httptest.Server, path, ct string, body []byte) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func getJSON(t *testing.T, srv *httptest.Server, path string, params url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(srv.URL + path + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// TestRemoteWriteAndQuery writes counters with remote write 1.0 and 2.0
// and checks PromQL answers and the API's error shapes.
func TestRemoteWriteAndQuery(t *testing.T) {
	srv, now := newTestAPI(t)
	base := now.Add(-10 * time.Minute).UnixMilli()
	var req prompb.WriteRequest
	for _, inst := range []string{"a", "b"} {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "reqs_total"}, {Name: "instance", Value: inst}, {Name: "job", Value: "api"}}}
		for i := range 41 { // 10 minutes every 15 s, +2/s (a) or +4/s (b)
			mult := 1.0
			if inst == "b" {
				mult = 2
			}
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: base + int64(i)*15000, Value: mult * 30 * float64(i)})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	raw, _ := req.Marshal()
	if resp := post(t, srv, "/api/v1/write", "application/x-protobuf", snappy.Encode(nil, raw)); resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("write: %d %s", resp.StatusCode, b)
	}
	// Remote write 2.0: one more series.
	st := writev2.NewSymbolTable()
	v2 := writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "temp", "job", "api"), nil),
		Samples:    []writev2.Sample{{Timestamp: base, Value: 21.5}},
	}}}
	v2.Symbols = st.Symbols()
	raw, _ = v2.Marshal()
	resp := post(t, srv, "/api/v1/write", "application/x-protobuf;proto=io.prometheus.write.v2.Request", snappy.Encode(nil, raw))
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written") != "1" {
		t.Fatalf("write v2: %d, samples written %q", resp.StatusCode, resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"))
	}

	end := float64(base+600000) / 1000
	code, out := getJSON(t, srv, "/api/v1/query", url.Values{"query": {"sum by (job) (rate(reqs_total[5m]))"}, "time": {jsonNum(end)}})
	data := out["data"].(map[string]any)
	res := data["result"].([]any)
	if code != 200 || data["resultType"] != "vector" || len(res) != 1 {
		t.Fatalf("query: %d %v", code, out)
	}
	if v := res[0].(map[string]any)["value"].([]any)[1]; !near(v, 6) {
		t.Fatalf("sum of rates = %v, want 6", v)
	}
	code, out = getJSON(t, srv, "/api/v1/query_range", url.Values{"query": {"rate(reqs_total{instance=\"a\"}[1m])"}, "start": {jsonNum(end - 300)}, "end": {jsonNum(end)}, "step": {"60"}})
	m := out["data"].(map[string]any)["result"].([]any)
	if code != 200 || len(m) != 1 || len(m[0].(map[string]any)["values"].([]any)) != 6 {
		t.Fatalf("query_range: %d %v", code, out)
	}
	for _, p := range m[0].(map[string]any)["values"].([]any) {
		if !near(p.([]any)[1], 2) {
			t.Fatalf("rate = %v, want 2", p)
		}
	}
	if code, out = getJSON(t, srv, "/api/v1/labels", nil); code != 200 || len(out["data"].([]any)) != 3 {
		t.Fatalf("labels: %d %v", code, out)
	}
	if code, out = getJSON(t, srv, "/api/v1/label/instance/values", nil); code != 200 || len(out["data"].([]any)) != 2 {
		t.Fatalf("label values: %d %v", code, out)
	}
	if code, out = getJSON(t, srv, "/api/v1/series", url.Values{"match[]": {"{job=\"api\"}"}}); code != 200 || len(out["data"].([]any)) != 3 {
		t.Fatalf("series: %d %v", code, out)
	}
	if code, out = getJSON(t, srv, "/api/v1/query", url.Values{"query": {"sum(("}}); code != 400 || out["errorType"] != "bad_data" {
		t.Fatalf("bad query: %d %v", code, out)
	}

	// Malformed writes are 4xx naming the problem.
	for _, c := range []struct {
		body []byte
		ct   string
		code int
		want string
	}{
		{[]byte("not snappy"), "application/x-protobuf", 400, "snappy"},
		{snappy.Encode(nil, []byte{0xff, 0xff}), "application/x-protobuf", 400, "prometheus.WriteRequest"},
		{snappy.Encode(nil, nil), "text/plain", 415, "Content-Type"},
		{func() []byte {
			r := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "job", Value: "x"}}, Samples: []prompb.Sample{{Timestamp: 1, Value: 1}}}}}
			b, _ := r.Marshal()
			return snappy.Encode(nil, b)
		}(), "application/x-protobuf", 400, "no metric name"},
	} {
		resp := post(t, srv, "/api/v1/write", c.ct, c.body)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != c.code || !strings.Contains(string(b), c.want) {
			t.Errorf("write %q: %d %s; want %d mentioning %q", c.body, resp.StatusCode, b, c.code, c.want)
		}
	}
}

// near reports whether a JSON sample value is want up to float rounding.
func near(v any, want float64) bool {
	f, err := strconv.ParseFloat(v.(string), 64)
	return err == nil && math.Abs(f-want) < 1e-9*math.Max(1, math.Abs(want))
}

func jsonNum(f float64) string { b, _ := json.Marshal(f); return string(b) }
