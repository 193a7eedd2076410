//go:build e2e

package e2e

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/centra-cloud/centra/e2e/framework"
)

var (
	tsBenchInstances = flag.Int("ts-bench-instances", 3334, "BenchmarkTimeseriesQueryRange: scrape targets, 3 series each")
	tsBenchHours     = flag.Int("ts-bench-hours", 1, "BenchmarkTimeseriesQueryRange: hours of 15 s scrapes per series (5 with the default targets: 12M samples)")
)

// BenchmarkTimeseriesIngest measures remote-write ingest into a cluster
// of one control-plane node and one store, and of one control-plane node
// and three stores. One op is one scrape of 16,000 series sent as 8
// concurrent requests of 2,000 samples (Prometheus's max_samples_per_send)
// spread over the nodes: recent samples, the raw path scrapes take. The
// series exist before timing starts. Not part of `make test`; run it with
//
//	go test -tags e2e -run '^$' -bench TimeseriesIngest -benchtime 30x ./e2e/ -centra-bin=$PWD/bin/centra
//
// It reports samples/s next to ns/op.
func BenchmarkTimeseriesIngest(b *testing.B) {
	const senders, perReq = 8, 2000
	for _, stores := range []int{1, 3} {
		b.Run(fmt.Sprintf("stores=%d", stores), func(b *testing.B) {
			c := framework.NewCluster(b, framework.WithNodes(1), framework.WithStores(stores), framework.WithLogLevel("warn"))
			nodes := append([]*framework.Node{c.Node(0)}, c.Stores()...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if stores == 1 {
				singleReplica(b, ctx, c.Node(0))
			}
			base := time.Now().Add(-5 * time.Minute).UnixMilli()
			// scrape sends round's samples of every series; it returns the
			// number of requests not answered 204.
			scrape := func(round int) int64 {
				var failed atomic.Int64
				var wg sync.WaitGroup
				for part := range senders {
					wg.Add(1)
					go func() {
						defer wg.Done()
						req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, perReq)}
						for i := range perReq {
							s := part*perReq + i
							req.Timeseries[i] = prompb.TimeSeries{
								Labels:  []prompb.Label{{Name: "__name__", Value: "bench_total"}, {Name: "instance", Value: fmt.Sprintf("10.1.%d.%d:9100", s/250, s%250)}, {Name: "job", Value: "bench"}},
								Samples: []prompb.Sample{{Timestamp: base + int64(round)*100, Value: float64(round * (s % 7))}},
							}
						}
						raw, _ := req.Marshal()
						if tsTryWrite(ctx, nodes[(round+part)%len(nodes)], snappy.Encode(nil, raw)) != http.StatusNoContent {
							failed.Add(1)
						}
					}()
				}
				wg.Wait()
				return failed.Load()
			}
			if n := scrape(0); n > 0 {
				b.Fatalf("creating the series: %d of %d requests failed", n, senders)
			}
			round := 0
			var failed int64
			for b.Loop() {
				round++
				failed += scrape(round)
			}
			if failed > 0 {
				b.Fatalf("%d of %d requests failed", failed, senders*round)
			}
			b.ReportMetric(float64(senders*perReq*round)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkTimeseriesQueryRange writes -ts-bench-hours (+ 5 min) of 15 s scrapes of
// -ts-bench-instances scrape-like targets (3 series each, as in
// scrapeLike) ending 2 h ago into one control-plane node and three
// stores: closed hours, merged straight into XOR chunks, the form raw
// samples take once compacted. It reports the bytes per sample (on disk
// per replica, after restarting the stores so that pebble has flushed
// its WAL: the state SSTs, and everything under the data directories
// including the raft log; logical: chunk values), then times a 1 h
// query_range (step 15 s) of sum by (__name__) ({job="node"}), which
// reads every series. Not part of `make test`; run it with
//
//	go test -tags e2e -run '^$' -bench TimeseriesQueryRange -benchtime 10x ./e2e/ -centra-bin=$PWD/bin/centra
//
// and add -ts-bench-hours=5 for 12.2M samples (10,002 series x 1,220).
func BenchmarkTimeseriesQueryRange(b *testing.B) {
	c := framework.NewCluster(b, framework.WithNodes(1), framework.WithStores(3), framework.WithLogLevel("warn"))
	cp := c.Node(0)
	nodes := append([]*framework.Node{cp}, c.Stores()...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hours, instances := *tsBenchHours, *tsBenchInstances
	scrapes := int((time.Duration(hours)*time.Hour + 5*time.Minute) / tsScrape) // + the range of rate
	end := time.Now().Add(-2*time.Hour).UnixMilli() / tsScrape.Milliseconds() * tsScrape.Milliseconds()
	start := end - int64(scrapes-1)*tsScrape.Milliseconds()
	samples := 3 * instances * scrapes

	// 4 senders, each request 10 targets' history.
	const perReq, senders = 10, 4
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := int(next.Add(perReq)) - perReq
				if first >= instances {
					return
				}
				ts := scrapeLike(start, scrapes, first, min(perReq, instances-first), rand.New(rand.NewPCG(uint64(first), 1)))
				raw, _ := (&prompb.WriteRequest{Timeseries: ts}).Marshal()
				if tsTryWrite(ctx, nodes[(first/perReq+w)%len(nodes)], snappy.Encode(nil, raw)) != http.StatusNoContent {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d history requests failed", n)
	}
	took := time.Since(began)
	b.Logf("history: %d samples of %d series in %v (%.0f samples/s, merged into chunks)", samples, 3*instances, took.Round(time.Millisecond), float64(samples)/took.Seconds())

	chunks, valueBytes, keyBytes, err := tsChunkBytes(ctx, cp)
	if err != nil {
		b.Fatal(err)
	}
	// Restarting the stores (SIGTERM) leaves every write in SSTs: pebble
	// flushes the WAL it replays when it opens.
	before := tsDiskUsage(b, c.Stores())
	for _, s := range c.Stores() {
		if err := s.Restart(); err != nil {
			b.Fatal(err)
		}
		if err := s.WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
	}
	after := tsDiskUsage(b, c.Stores())
	if after.sst == 0 || after.raft == 0 {
		b.Fatalf("no SSTs or raft files under the stores' data directories (%+v): has their layout changed?", after)
	}
	perSample := func(n int64) float64 { return float64(n) / float64(len(c.Stores())) / float64(samples) }
	b.Logf("%d chunks: %.3f B/sample of chunk values, %.3f with keys", chunks, float64(valueBytes)/float64(samples), float64(valueBytes+keyBytes)/float64(samples))
	for _, u := range []struct {
		when string
		du   diskUsage
	}{{"after ingest", before}, {"after restarting the stores", after}} {
		b.Logf("per replica %s: %.3f B/sample in state SSTs, %.3f in other state files (WAL, manifest), %.3f in the raft directory",
			u.when, perSample(u.du.sst), perSample(u.du.state-u.du.sst), perSample(u.du.raft))
	}
	q := url.Values{
		"query": {`sum by (__name__) ({job="node"})`}, "step": {"15"},
		"start": {secs(end - time.Hour.Milliseconds())}, "end": {secs(end)},
	}
	res, err := tsQuery(cp.URL(), "/api/v1/query_range", q)
	if err != nil || len(res) != 3 || len(res[0].Values) != 241 {
		b.Fatalf("query_range: %v, %v; want 3 series of 241 points", res, err)
	}
	for b.Loop() {
		if _, err := tsQuery(cp.URL(), "/api/v1/query_range", q); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/query")
	b.ReportMetric(perSample(after.sst), "sst-B/sample")
	b.ReportMetric(perSample(after.state+after.raft), "disk-B/sample")
	b.ReportMetric(float64(valueBytes)/float64(samples), "chunk-B/sample")
}

// diskUsage is the bytes of files under stores' data directories.
type diskUsage struct {
	sst, state, raft int64 // state SSTs, all state files, raft directory
}

func tsDiskUsage(b *testing.B, stores []*framework.Node) diskUsage {
	b.Helper()
	var du diskUsage
	for _, s := range stores {
		err := filepath.WalkDir(s.DataDir(), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return nil // removed meanwhile (compaction)
			}
			rel, _ := filepath.Rel(s.DataDir(), path)
			switch {
			case strings.HasPrefix(rel, "raft"+string(filepath.Separator)):
				du.raft += info.Size()
			case strings.HasPrefix(rel, "state"+string(filepath.Separator)):
				du.state += info.Size()
				if strings.HasSuffix(path, ".sst") {
					du.sst += info.Size()
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return du
}
