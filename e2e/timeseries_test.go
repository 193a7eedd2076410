//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/centra-cloud/centra/e2e/framework"
	flaredb "github.com/centra-cloud/centra/flaredb/client"
)

// Time series (issue 14): Prometheus remote write in, PromQL out, on a
// cluster of one control-plane node and three stores.

const (
	tsScrape    = 15 * time.Second
	tsInstances = 100
)

// tsWrite remote-writes req (1.0) to node n and fails the test unless the
// answer is 204.
func tsWrite(t *testing.T, n *framework.Node, req *prompb.WriteRequest) {
	t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	code, body := tsPost(t, n, "/api/v1/write", snappy.Encode(nil, raw))
	if code != http.StatusNoContent {
		t.Fatalf("remote write to %s: %d %s", n, code, body)
	}
}

func tsPost(t *testing.T, n *framework.Node, path string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.URL()+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// promResult is one series of a Prometheus API answer.
type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
	Values [][]any           `json:"values"`
}

// tsQuery runs a Prometheus API query on base (a node URL or Prometheus)
// and returns the result series.
func tsQuery(base, path string, params url.Values) ([]promResult, error) {
	resp, err := http.PostForm(base+path, params)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promResult `json:"result"`
		} `json:"data"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil || out.Status != "success" {
		return nil, fmt.Errorf("%s %v: %d %s", path, params, resp.StatusCode, b)
	}
	return out.Data.Result, nil
}

func pointValue(p []any) float64 {
	f, _ := strconv.ParseFloat(p[1].(string), 64)
	return f
}

func secs(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) }

// scrapeLike returns n scrapes (every tsScrape from start) of scrape-like
// series as Prometheus sends them: for each of the instances numbered
// first to first+count-1 a counter growing by small integers, a gauge
// wandering in 4 KiB steps, and up = 1.
func scrapeLike(start int64, n, first, count int, rng *rand.Rand) []prompb.TimeSeries {
	var out []prompb.TimeSeries
	for i := first; i < first+count; i++ {
		inst := fmt.Sprintf("10.0.%d.%d:9100", i/250, i%250)
		lbl := func(name string) []prompb.Label {
			return []prompb.Label{{Name: "__name__", Value: name}, {Name: "instance", Value: inst}, {Name: "job", Value: "node"}}
		}
		counter := prompb.TimeSeries{Labels: lbl("http_requests_total")}
		gauge := prompb.TimeSeries{Labels: lbl("memory_bytes")}
		up := prompb.TimeSeries{Labels: lbl("up")}
		c, g := 0.0, float64(1<<30)
		for j := range n {
			ts := start + int64(j)*tsScrape.Milliseconds()
			c += float64(rng.IntN(20))
			if rng.IntN(4) == 0 {
				g += float64(4096 * (rng.IntN(5) - 2))
			}
			counter.Samples = append(counter.Samples, prompb.Sample{Timestamp: ts, Value: c})
			gauge.Samples = append(gauge.Samples, prompb.Sample{Timestamp: ts, Value: g})
			up.Samples = append(up.Samples, prompb.Sample{Timestamp: ts, Value: 1})
		}
		out = append(out, counter, gauge, up)
	}
	return out
}

func TestTimeseriesRemoteWriteAndPromQL(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithStores(3))
	cp := c.Node(0)
	nodes := append([]*framework.Node{cp}, c.Stores()...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	now := time.Now().UnixMilli()
	rng := rand.New(rand.NewPCG(1, 2))

	// Two hours of scrape-like history ending 3 h ago (closed windows:
	// merged into XOR chunks at once), written through every node in
	// batches of 10 instances.
	histStart := now - 5*time.Hour.Milliseconds()
	histN := int(2 * time.Hour / tsScrape)
	hist := scrapeLike(histStart, histN, 0, tsInstances, rng)
	began := time.Now()
	for i := 0; i < len(hist); i += 30 {
		tsWrite(t, nodes[(i/30)%len(nodes)], &prompb.WriteRequest{Timeseries: hist[i:min(i+30, len(hist))]})
	}
	histSamples := len(hist) * histN
	t.Logf("history: %d samples in %v (%.0f samples/s, merged into chunks)", histSamples, time.Since(began), float64(histSamples)/time.Since(began).Seconds())

	// Scrape-shaped ingest: 50 requests of 1000 series with one recent
	// sample each (the raw path); measured, not asserted.
	began = time.Now()
	for r := range 50 {
		var req prompb.WriteRequest
		for s := range 1000 {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "load_total"}, {Name: "series", Value: strconv.Itoa(s)}},
				Samples: []prompb.Sample{{Timestamp: now - int64(50-r)*1000, Value: float64(r)}},
			})
		}
		tsWrite(t, nodes[r%len(nodes)], &req)
	}
	t.Logf("scrape-shaped ingest: 50000 samples of 1000 series in %v (%.0f samples/s)", time.Since(began), 50000/time.Since(began).Seconds())

	// The last 30 minutes of constant-rate counters (raw path): rt_total
	// of instance k grows by k every scrape, so rate = k/15 per second.
	recentStart := now - 30*time.Minute.Milliseconds()
	var recent prompb.WriteRequest
	for k := 1; k <= 4; k++ {
		s := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "rt_total"}, {Name: "group", Value: []string{"even", "odd"}[k%2]}, {Name: "instance", Value: strconv.Itoa(k)}}}
		for j := 0; recentStart+int64(j)*tsScrape.Milliseconds() <= now; j++ {
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: recentStart + int64(j)*tsScrape.Milliseconds(), Value: float64(k * j)})
		}
		recent.Timeseries = append(recent.Timeseries, s)
	}
	// A gauge that went stale 2 minutes ago (Prometheus's staleness marker).
	recent.Timeseries = append(recent.Timeseries, prompb.TimeSeries{
		Labels:  []prompb.Label{{Name: "__name__", Value: "gone"}},
		Samples: []prompb.Sample{{Timestamp: now - 180000, Value: 7}, {Timestamp: now - 120000, Value: math.Float64frombits(0x7ff0000000000002)}},
	})
	tsWrite(t, c.Store(1), &recent)
	tsWrite(t, c.Store(2), &recent) // a retry: idempotent

	evalAt := now - 60000
	t.Run("rate and sum by on every node", func(t *testing.T) {
		for _, n := range nodes {
			framework.Eventually(t, func() error {
				res, err := tsQuery(n.URL(), "/api/v1/query", url.Values{"query": {"sum by (group) (rate(rt_total[5m]))"}, "time": {secs(evalAt)}})
				if err != nil {
					return err
				}
				want := map[string]float64{"odd": (1 + 3) / 15.0, "even": (2 + 4) / 15.0}
				if len(res) != 2 {
					return fmt.Errorf("%s: %d groups, want 2: %v", n, len(res), res)
				}
				for _, r := range res {
					if got := pointValue(r.Value); math.Abs(got-want[r.Metric["group"]]) > 1e-9 {
						return fmt.Errorf("%s: group %s = %v, want %v", n, r.Metric["group"], got, want[r.Metric["group"]])
					}
				}
				return nil
			}, 30*time.Second)
		}
	})

	t.Run("range query returns the samples written", func(t *testing.T) {
		// memory_bytes of instance 7, every scrape of the history.
		var want []prompb.Sample
		for _, s := range hist {
			if s.Labels[0].Value == "memory_bytes" && s.Labels[1].Value == "10.0.0.7:9100" {
				want = s.Samples
			}
		}
		res, err := tsQuery(cp.URL(), "/api/v1/query_range", url.Values{
			"query": {`memory_bytes{instance="10.0.0.7:9100"}`},
			"start": {secs(histStart)}, "end": {secs(histStart + int64(histN-1)*tsScrape.Milliseconds())}, "step": {"15"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || len(res[0].Values) != len(want) {
			t.Fatalf("got %d series; want 1 with %d points: %v", len(res), len(want), res)
		}
		for i, p := range res[0].Values {
			if pointValue(p) != want[i].Value || int64(math.Round(p[0].(float64)*1000)) != want[i].Timestamp {
				t.Fatalf("point %d = %v, want %v", i, p, want[i])
			}
		}
	})

	t.Run("sum at an instant of the history", func(t *testing.T) {
		at := histStart + 100*tsScrape.Milliseconds()
		want := 0.0
		for _, s := range hist {
			if s.Labels[0].Value == "http_requests_total" {
				want += s.Samples[100].Value
			}
		}
		res, err := tsQuery(c.Store(0).URL(), "/api/v1/query", url.Values{"query": {"sum(http_requests_total)"}, "time": {secs(at)}})
		if err != nil || len(res) != 1 || pointValue(res[0].Value) != want {
			t.Fatalf("sum(http_requests_total) = %v, %v; want %v", res, err, want)
		}
	})

	t.Run("staleness marker ends a series", func(t *testing.T) {
		res, err := tsQuery(cp.URL(), "/api/v1/query", url.Values{"query": {"gone"}, "time": {secs(now - 150000)}})
		if err != nil || len(res) != 1 || pointValue(res[0].Value) != 7 {
			t.Fatalf("gone before the marker = %v, %v; want 7", res, err)
		}
		res, err = tsQuery(cp.URL(), "/api/v1/query", url.Values{"query": {"gone"}, "time": {secs(now - 90000)}})
		if err != nil || len(res) != 0 {
			t.Fatalf("gone after the marker = %v, %v; want nothing (stale)", res, err)
		}
	})

	t.Run("bad input is a 4xx naming the problem", func(t *testing.T) {
		if code, body := tsPost(t, cp, "/api/v1/write", []byte("not snappy")); code != 400 || !strings.Contains(body, "snappy") {
			t.Errorf("garbage body: %d %s", code, body)
		}
		resp, err := http.PostForm(cp.URL()+"/api/v1/query", url.Values{"query": {"rate(x[5m]"}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), `"errorType":"bad_data"`) {
			t.Errorf("bad PromQL: %d %s", resp.StatusCode, b)
		}
	})

	t.Run("centra ts CLI", func(t *testing.T) {
		ep := "--endpoint=" + c.Store(0).Endpoint()
		r := framework.RunCLI("ts", "query", ep, "--time", secs(evalAt), "sum(rate(rt_total[5m]))")
		if r.Err != nil || !strings.Contains(r.Stdout, "SERIES") || !strings.Contains(r.Stdout, "0.6666666666666") {
			t.Errorf("ts query: %s", r)
		}
		r = framework.RunCLI("ts", "query", ep, "-o", "json", "--start", secs(evalAt-120000), "--end", secs(evalAt), "--step", "60s", `rate(rt_total{instance="3"}[5m])`)
		if r.Err != nil || !strings.Contains(r.Stdout, `"resultType":"matrix"`) || !strings.Contains(r.Stdout, `"instance":"3"`) {
			t.Errorf("ts query range -o json: %s", r)
		}
		r = framework.RunCLI("ts", "series", ep, "rt_total")
		if r.Err != nil || strings.Count(r.Stdout, "rt_total{") != 4 {
			t.Errorf("ts series: %s", r)
		}
		r = framework.RunCLI("ts", "labels", ep)
		if r.Err != nil || r.Stdout != "__name__\ngroup\ninstance\njob\nseries\n" {
			t.Errorf("ts labels: %s", r)
		}
		r = framework.RunCLI("ts", "query", ep, "sum((")
		if r.Err == nil || !strings.Contains(r.Stderr, "bad_data") {
			t.Errorf("ts query of bad PromQL: %s", r)
		}
	})

	t.Run("bytes per sample", func(t *testing.T) {
		chunks, chunkBytes, keyBytes, err := tsChunkBytes(ctx, cp)
		if err != nil {
			t.Fatal(err)
		}
		perSample := float64(chunkBytes) / float64(histSamples)
		t.Logf("history: %d samples of %d series in %d chunks: %.3f bytes/sample of chunk values, %.3f with keys",
			histSamples, len(hist), chunks, perSample, float64(chunkBytes+keyBytes)/float64(histSamples))
		if perSample > 2 {
			t.Errorf("%.3f bytes per sample; want <= 2", perSample)
		}
	})
}

// tsChunkBytes counts the chunk values of the timeseries namespace and
// the bytes of their values and keys.
func tsChunkBytes(ctx context.Context, n *framework.Node) (chunks, valueBytes, keyBytes int, err error) {
	kv, err := flaredb.New(n.URL())
	if err != nil {
		return 0, 0, 0, err
	}
	defer kv.Close()
	err = kv.ScanFunc(ctx, "timeseries", []byte{1, 'D'}, []byte{1, 'D' + 1}, flaredb.ScanOptions{}, func(p flaredb.KvPair) bool {
		chunks++
		valueBytes += len(p.Value)
		keyBytes += len(p.Key) + len("timeseries") + 2 // + the namespace prefix FlareDB adds
		return true
	})
	return chunks, valueBytes, keyBytes, err
}

// singleReplica sets PD's max-replicas to 1 on control-plane node cp, so
// that a cluster with one store bootstraps its first region.
func singleReplica(tb testing.TB, ctx context.Context, cp *framework.Node) {
	tb.Helper()
	code, body, err := cp.Do(ctx, http.MethodPost, framework.PDPrefix+"/config/replicate", `{"max-replicas": 1}`)
	if err != nil || code != http.StatusOK {
		tb.Fatalf("set PD max-replicas to 1 on %s: %d %s %v", cp, code, body, err)
	}
}
