//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestTimeseriesAckedSamplesSurviveKill remote-writes while the store
// leading the data is killed with SIGKILL: every sample answered 204 must
// be returned by remote read afterwards (answers other than 204 are
// allowed while a new leader is elected, and are not counted).
func TestTimeseriesAckedSamplesSurviveKill(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithStores(3), framework.WithLogLevel("warn"))
	cp := c.Node(0)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const series, batches = 20, 120
	base := time.Now().Add(-10 * time.Minute).UnixMilli()
	var acked []int64 // timestamps of the batches answered 204
	var victim *framework.Node
	for b := range batches {
		ts := base + int64(b)*1000
		req := prompb.WriteRequest{}
		for s := range series {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "durable_total"}, {Name: "series", Value: strconv.Itoa(s)}},
				Samples: []prompb.Sample{{Timestamp: ts, Value: float64(b)}},
			})
		}
		raw, _ := req.Marshal()
		if code := tsTryWrite(ctx, cp, snappy.Encode(nil, raw)); code == http.StatusNoContent {
			acked = append(acked, ts)
		}
		if b == batches/3 {
			victim = leaderStore(t, ctx, c)
			t.Logf("kill -9 store %d (leads regions) after %d acknowledged batches", victim.StoreID(), len(acked))
			if err := victim.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("%d of %d batches acknowledged", len(acked), batches)
	if len(acked) < batches/2 {
		t.Fatalf("only %d of %d batches acknowledged with one store of three down", len(acked), batches)
	}
	// Remote read returns raw samples: every acknowledged timestamp of
	// every series must be there.
	rr := prompb.ReadRequest{Queries: []*prompb.Query{{
		StartTimestampMs: base, EndTimestampMs: base + batches*1000,
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "durable_total"}},
	}}}
	framework.Eventually(t, func() error {
		res, err := tsRemoteRead(ctx, cp, &rr)
		if err != nil {
			return err
		}
		got := res[0].Timeseries
		if len(got) != series {
			return fmt.Errorf("remote read returned %d series, want %d", len(got), series)
		}
		for _, s := range got {
			have := map[int64]bool{}
			for _, x := range s.Samples {
				have[x.Timestamp] = true
			}
			for _, ts := range acked {
				if !have[ts] {
					return fmt.Errorf("series %v lost the acknowledged sample at %d", s.Labels, ts)
				}
			}
		}
		return nil
	}, time.Minute)
}

// tsRemoteRead runs a remote read (SAMPLES) on n.
func tsRemoteRead(ctx context.Context, n *framework.Node, rr *prompb.ReadRequest) ([]*prompb.QueryResult, error) {
	raw, err := rr.Marshal()
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.URL()+"/api/v1/read", bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("remote read: %d %s", resp.StatusCode, body)
	}
	dec, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, err
	}
	var rresp prompb.ReadResponse
	if err := rresp.Unmarshal(dec); err != nil {
		return nil, err
	}
	if len(rresp.Results) != len(rr.Queries) {
		return nil, fmt.Errorf("remote read: %d results for %d queries", len(rresp.Results), len(rr.Queries))
	}
	return rresp.Results, nil
}

// tsTryWrite remote-writes body to n and returns the status (0 when the
// request failed).
func tsTryWrite(ctx context.Context, n *framework.Node, body []byte) int {
	ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.URL()+"/api/v1/write", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestTimeseriesPrometheusAckedSurviveKill runs a real Prometheus (it
// scrapes itself and every centra node every 2 s) remote-writing through
// a recording proxy to the control-plane node of a cluster of three
// stores. The store leading most regions is killed with SIGKILL while
// Prometheus writes, and restarted; then every sample of every request
// centra answered 2xx (what Prometheus was told is stored; Prometheus
// retries the others) must be returned by remote read, bit for bit
// (staleness markers of the killed target included).
func TestTimeseriesPrometheusAckedSurviveKill(t *testing.T) {
	promBin := prometheusBin(t)
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithStores(3), framework.WithLogLevel("warn"))
	cp := c.Node(0)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rec := &ackRecorder{target: cp.URL() + "/api/v1/write", samples: map[string]map[int64]uint64{}}
	proxy := httptest.NewServer(rec)
	defer proxy.Close()
	_, targets := runPrometheus(t, promBin, c, proxy.URL+"/api/v1/write", "")

	// waitAcked waits until n more requests than now are acknowledged.
	waitAcked := func(n int, what string) {
		from := rec.stats().acked
		framework.Eventually(t, func() error {
			if st := rec.stats(); st.acked < from+n {
				return fmt.Errorf("%s: %d of %d more remote-write requests acknowledged (%+v)", what, st.acked-from, n, st)
			}
			return nil
		}, 2*time.Minute)
	}
	framework.Eventually(t, func() error {
		if n := len(rec.instances()); n != len(targets) {
			return fmt.Errorf("acknowledged samples of %d of %d targets", n, len(targets))
		}
		return nil
	}, 2*time.Minute)
	waitAcked(10, "before the kill")
	victim := leaderStore(t, ctx, c)
	t.Logf("kill -9 store %d (leads the most regions) while Prometheus writes; so far %+v", victim.StoreID(), rec.stats())
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	waitAcked(20, "with a store killed")
	if err := victim.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := victim.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitAcked(10, "after the restart")
	// Close waits for the requests in flight: nothing is acknowledged
	// after this (Prometheus's retries then fail to connect).
	proxy.Close()
	st := rec.stats()
	t.Logf("remote write through the proxy: %+v", st)
	if st.undecodable > 0 {
		t.Fatalf("%d acknowledged request bodies could not be decoded as snappy prometheus.WriteRequest", st.undecodable)
	}

	rr := prompb.ReadRequest{}
	for _, inst := range targets {
		rr.Queries = append(rr.Queries, &prompb.Query{
			StartTimestampMs: st.minTs, EndTimestampMs: st.maxTs,
			Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "instance", Value: inst}},
		})
	}
	framework.Eventually(t, func() error {
		res, err := tsRemoteRead(ctx, cp, &rr)
		if err != nil {
			return err
		}
		have := map[string]map[int64]uint64{}
		for _, r := range res {
			for _, s := range r.Timeseries {
				m := map[int64]uint64{}
				for _, x := range s.Samples {
					m[x.Timestamp] = math.Float64bits(x.Value)
				}
				have[seriesKey(s.Labels)] = m
			}
		}
		missing, wrong, checked := 0, 0, 0
		var example string
		for k, want := range rec.samples {
			for ts, bits := range want {
				checked++
				got, ok := have[k][ts]
				switch {
				case !ok:
					missing++
					example = fmt.Sprintf("%s at %d is missing", k, ts)
				case got != bits:
					wrong++
					example = fmt.Sprintf("%s at %d: value bits %#x, acknowledged %#x", k, ts, got, bits)
				}
			}
		}
		if missing+wrong > 0 {
			return fmt.Errorf("%d of %d acknowledged samples missing, %d with another value; e.g. %s", missing, checked, wrong, example)
		}
		t.Logf("all %d acknowledged samples of %d series are stored", checked, len(rec.samples))
		return nil
	}, time.Minute)
}

// ackRecorder forwards remote-write requests to a centra node and records
// the samples of every request the node answered 2xx, before passing the
// answer on to the sender.
type ackRecorder struct {
	target string

	mu      sync.Mutex
	samples map[string]map[int64]uint64 // series -> timestamp -> value bits
	st      ackStats
}

type ackStats struct {
	requests, acked, undecodable int
	minTs, maxTs                 int64
	slowest                      time.Duration // of the forwarded requests
}

func (a *ackRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, a.target, bytes.NewReader(body))
	for _, h := range []string{"Content-Type", "Content-Encoding", "X-Prometheus-Remote-Write-Version", "User-Agent"} {
		req.Header.Set(h, r.Header.Get(h))
	}
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.count(time.Since(began), false, nil)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	a.count(time.Since(began), resp.StatusCode/100 == 2, body)
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// count records a request that took took; body is recorded if it was
// acknowledged.
func (a *ackRecorder) count(took time.Duration, acked bool, body []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.st.requests++
	a.st.slowest = max(a.st.slowest, took)
	if !acked {
		return
	}
	a.st.acked++
	var wr prompb.WriteRequest
	raw, err := snappy.Decode(nil, body)
	if err == nil {
		err = wr.Unmarshal(raw)
	}
	if err != nil {
		a.st.undecodable++
		return
	}
	for _, s := range wr.Timeseries {
		k := seriesKey(s.Labels)
		if a.samples[k] == nil {
			a.samples[k] = map[int64]uint64{}
		}
		for _, x := range s.Samples {
			a.samples[k][x.Timestamp] = math.Float64bits(x.Value)
			if a.st.minTs == 0 || x.Timestamp < a.st.minTs {
				a.st.minTs = x.Timestamp
			}
			a.st.maxTs = max(a.st.maxTs, x.Timestamp)
		}
	}
}

func (a *ackRecorder) stats() ackStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st
}

// instances are the instance labels of the acknowledged up series.
func (a *ackRecorder) instances() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for k := range a.samples {
		if strings.HasPrefix(k, "__name__=up,") {
			out = append(out, k)
		}
	}
	return out
}

// seriesKey is a series' label set as sorted name=value pairs.
func seriesKey(ls []prompb.Label) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.Name + "=" + l.Value
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}
