//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/centra-cloud/centra/e2e/framework"
)

// promRunFor is how long the real Prometheus scrapes and remote-writes
// before the queries are compared (CENTRA_E2E_PROMETHEUS_SECONDS, at
// least 100: the comparison starts 65 s after the first data arrived).
func promRunFor() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("CENTRA_E2E_PROMETHEUS_SECONDS")); err == nil && s > 100 {
		return time.Duration(s) * time.Second
	}
	return 2 * time.Minute
}

// TestTimeseriesRealPrometheus runs Debian's prometheus (2.42) against a
// cluster of one control-plane node and three stores: it scrapes itself
// and every centra node and remote-writes to centra; then query_range of
// a list of PromQL expressions must give the same series and values on
// centra as on Prometheus, and Prometheus's remote read must answer a
// series that only centra holds.
func TestTimeseriesRealPrometheus(t *testing.T) {
	promBin := prometheusBin(t)
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithStores(3), framework.WithLogLevel("warn"))
	cp := c.Node(0)
	// Selectors with source="centra_only" go to centra by remote read;
	// every other query is answered from Prometheus's own TSDB.
	promURL, targets := runPrometheus(t, promBin, c, cp.URL()+"/api/v1/write", fmt.Sprintf(`remote_read:
  - url: %s/api/v1/read
    read_recent: true
    required_matchers: {source: centra_only}
`, c.Store(0).URL()))

	// A series only centra holds, carrying Prometheus's external label
	// (remote read adds it as a matcher and strips it from the answer).
	now := time.Now().UnixMilli()
	only := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "centra_synthetic"}, {Name: "cluster", Value: "e2e"}, {Name: "source", Value: "centra_only"}}}
	for i := range 20 {
		only.Samples = append(only.Samples, prompb.Sample{Timestamp: now - int64(i)*15000, Value: float64(100 - i)})
	}
	slices.Reverse(only.Samples)
	tsWrite(t, cp, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{only}})

	framework.Eventually(t, func() error {
		res, err := tsQuery(cp.URL(), "/api/v1/query", url.Values{"query": {`count(up{cluster="e2e"})`}})
		if err != nil || len(res) != 1 || pointValue(res[0].Value) != float64(len(targets)) {
			return fmt.Errorf("centra has not received every target's up yet: %v %v", res, err)
		}
		return nil
	}, time.Minute)
	// Let history accumulate: wait until centra holds promRunFor of up
	// samples (every 2 s) of every target.
	runFor := promRunFor()
	// Prometheus does not send what it scraped before its remote-write
	// queue started; compare only where centra has every range's history.
	firstData := time.Now()
	t.Logf("Prometheus remote-writes to centra; comparing once centra holds %v of scrapes", runFor)
	framework.Eventually(t, func() error {
		q := fmt.Sprintf(`min(count_over_time(up{cluster="e2e"}[%ds]))`, int(runFor.Seconds())+60)
		res, err := tsQuery(cp.URL(), "/api/v1/query", url.Values{"query": {q}})
		if err != nil || len(res) != 1 || pointValue(res[0].Value) < runFor.Seconds()/2 {
			return fmt.Errorf("%s = %v, %v; want >= %v", q, res, err, runFor.Seconds()/2)
		}
		return nil
	}, runFor+2*time.Minute)

	t.Run("remote read answers a series only centra holds", func(t *testing.T) {
		res, err := tsQuery(promURL, "/api/v1/query", url.Values{"query": {`centra_synthetic{source="centra_only"}`}, "time": {secs(now)}})
		if err != nil || len(res) != 1 || pointValue(res[0].Value) != 100 || res[0].Metric["cluster"] != "" {
			t.Fatalf("Prometheus via remote read: %v, %v; want one series = 100 without the external label", res, err)
		}
		res, err = tsQuery(promURL, "/api/v1/query", url.Values{"query": {`rate(centra_synthetic{source="centra_only"}[2m])`}, "time": {secs(now)}})
		if err != nil || len(res) != 1 || math.Abs(pointValue(res[0].Value)-1.0/15) > 1e-9 {
			t.Fatalf("rate through remote read: %v, %v; want 1/15", res, err)
		}
	})

	// Evaluation times must not coincide with sample timestamps (a
	// sample exactly on a range boundary is in the range for Prometheus
	// 2.42 and out of it for the 3.x engine centra embeds): pick a
	// millisecond offset no target's scrapes use.
	offset, err := freeMillisOffset(promURL)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(-15*time.Second).Unix()/4*4 + 1 // ≡ 1 mod 4: subquery steps (4s) never hit a boundary
	start := firstData.Add(65*time.Second).Unix()/4*4 + 1 // the longest range below is 1m
	exprs := []string{
		`up`,
		`rate(process_cpu_seconds_total[30s])`,
		`sum by (job, instance) (rate(go_gc_duration_seconds_count[1m]))`,
		`histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[1m])))`,
		`topk(3, go_memstats_alloc_bytes)`, // not goroutines: equal values break ties differently in 2.42 and 3.x
		`absent(no_such_metric)`,
		`max_over_time(go_goroutines[30s:4s])`,
		`go_memstats_alloc_bytes offset 20s`,
		`count by (job) (up)`,
	}
	for _, e := range exprs {
		t.Run(e, func(t *testing.T) {
			p := url.Values{"query": {e}, "start": {fmt.Sprintf("%d.%03d", start, offset)}, "end": {fmt.Sprintf("%d.%03d", end, offset)}, "step": {"4"}}
			// Retried only while remote write may still be delivering
			// the last seconds.
			framework.Eventually(t, func() error {
				want, err := tsQuery(promURL, "/api/v1/query_range", p)
				if err != nil {
					return err
				}
				got, err := tsQuery(cp.URL(), "/api/v1/query_range", p)
				if err != nil {
					return err
				}
				if err := sameMatrix(want, got); err != nil {
					return fmt.Errorf("%s over [%d, %d]: %v", e, start, end, err)
				}
				t.Logf("%s: %d series agree", e, len(want))
				return nil
			}, 20*time.Second)
		})
	}
}

// prometheusBin returns the path of Debian's prometheus or skips the test.
func prometheusBin(t *testing.T) string {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed; install Debian's package to run this test: apt-get install --no-install-recommends prometheus")
	}
	return bin
}

// runPrometheus starts Prometheus scraping itself and every node of c
// every 2 s (job "targets", external label cluster="e2e") and
// remote-writing to writeURL; extra is appended to its configuration. It
// returns Prometheus's URL and its scrape targets; Prometheus is stopped
// when the test ends (its log is logged if the test failed).
func runPrometheus(t *testing.T, bin string, c *framework.Cluster, writeURL, extra string) (string, []string) {
	t.Helper()
	promAddr, err := framework.UnusedAddr()
	if err != nil {
		t.Fatal(err)
	}
	targets := []string{promAddr, c.Node(0).Endpoint()}
	for _, s := range c.Stores() {
		targets = append(targets, s.Endpoint())
	}
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 2s
  evaluation_interval: 2s
  external_labels: {cluster: e2e}
scrape_configs:
  - job_name: targets
    static_configs: [{targets: [%s]}]
remote_write:
  - url: %s
    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 2s}
`, strings.Join(quoted, ", "), writeURL) + extra
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--web.listen-address="+promAddr, "--storage.tsdb.path="+filepath.Join(dir, "data"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", lastLinesOf(string(b), 40))
		}
	})
	return "http://" + promAddr, targets
}

// freeMillisOffset returns a millisecond offset (0-999) that no scrape
// timestamp of Prometheus's targets has.
func freeMillisOffset(promURL string) (int, error) {
	resp, err := http.PostForm(promURL+"/api/v1/query", url.Values{"query": {"up[10s]"}})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Result []struct {
				Values [][]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, err
	}
	used := map[int]bool{}
	for _, r := range out.Data.Result {
		for _, v := range r.Values {
			used[int(math.Round(v[0].(float64)*1000))%1000] = true
		}
	}
	for off := 500; off < 1500; off++ {
		if !used[off%1000] {
			return off % 1000, nil
		}
	}
	return 0, fmt.Errorf("no free millisecond offset")
}

// sameMatrix compares two query_range results: the same series (centra's
// carry Prometheus's external label cluster, which Prometheus's own
// answers leave out) and the same points up to float rounding.
func sameMatrix(want, got []promResult) error {
	key := func(m map[string]string) string {
		m = withoutLabel(m, "cluster")
		b, _ := json.Marshal(m)
		return string(b)
	}
	w := map[string][][]any{}
	for _, r := range want {
		w[key(r.Metric)] = r.Values
	}
	if len(got) != len(want) {
		return fmt.Errorf("centra answered %d series, Prometheus %d", len(got), len(want))
	}
	for _, r := range got {
		wv, ok := w[key(r.Metric)]
		if !ok {
			return fmt.Errorf("centra's series %v is not in Prometheus's answer", r.Metric)
		}
		if len(wv) != len(r.Values) {
			return fmt.Errorf("series %v: centra has %d points, Prometheus %d", r.Metric, len(r.Values), len(wv))
		}
		for i := range wv {
			a, b := pointValue(wv[i]), pointValue(r.Values[i])
			if wv[i][0] != r.Values[i][0] || !(a == b || math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(a)) || math.IsNaN(a) && math.IsNaN(b)) {
				return fmt.Errorf("series %v point %d: centra %v, Prometheus %v", r.Metric, i, r.Values[i], wv[i])
			}
		}
	}
	return nil
}

func withoutLabel(m map[string]string, drop string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if k != drop {
			out[k] = v
		}
	}
	return out
}
