//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestTimeseriesSelfScrape turns on [timeseries] self_scrape_interval
// (by flag) on a store and on the control-plane node: without any
// Prometheus, up of both nodes and the runbook's Chainfire write latency
// query answer from centra's own time series.
func TestTimeseriesSelfScrape(t *testing.T) {
	const flag = "--timeseries-self-scrape-interval=1s"
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithStores(1), framework.WithLogLevel("warn"), framework.WithStoreArgs(flag))
	cp := c.Node(0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	singleReplica(t, ctx, cp)
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := cp.StartWithArgs(flag); err != nil {
		t.Fatal(err)
	}
	if err := cp.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"chainfire": cp.Endpoint(), "flaredb": c.Store(0).Endpoint()}
	framework.Eventually(t, func() error {
		res, err := tsQuery(cp.URL(), "/api/v1/query", url.Values{"query": {"up"}})
		if err != nil {
			return err
		}
		if len(res) != len(want) {
			return fmt.Errorf("up: %v; want one series per node", res)
		}
		for _, r := range res {
			if want[r.Metric["job"]] != r.Metric["instance"] || pointValue(r.Value) != 1 {
				return fmt.Errorf("up: %v; want up = 1 of job/instance %v", res, want)
			}
		}
		return nil
	}, time.Minute)

	cli := cp.Client(t)
	const q = `histogram_quantile(0.99, rate(chainfire_write_duration_seconds_bucket[5m]))`
	framework.Eventually(t, func() error {
		if _, err := cli.Put(ctx, "self-scrape", time.Now().String()); err != nil {
			return err
		}
		res, err := tsQuery(c.Store(0).URL(), "/api/v1/query", url.Values{"query": {q}})
		if err != nil {
			return err
		}
		if len(res) != 1 || res[0].Metric["job"] != "chainfire" || !(pointValue(res[0].Value) > 0) || math.IsInf(pointValue(res[0].Value), 0) {
			return fmt.Errorf("%s = %v; want the control-plane node's p99 write latency", q, res)
		}
		t.Logf("%s = %v", q, res)
		return nil
	}, time.Minute)
}
