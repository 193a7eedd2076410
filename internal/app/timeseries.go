package app

import (
	"context"
	"net"
	"net/http"
	"sync"

	"github.com/centra-cloud/centra/flaredb/client"
	"github.com/centra-cloud/centra/flaredb/tsdb"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// timeseries is the time-series database every node serves on its API
// listener (/api/v1/...), a client of FlareDB through this node's own API.
type timeseries struct {
	kv   *client.Client
	api  *tsdb.API
	stop context.CancelFunc
	wg   sync.WaitGroup // the maintenance and self-scrape loops
}

// startTimeseries builds the TSDB over a FlareDB client of this node's API
// (a control-plane node answers region lookups itself, a store forwards
// them to PD); on a control-plane node it starts the maintenance loop
// that runs while this node leads the metadata shard, and with
// self_scrape_interval the loop writing this node's own metrics (job
// chainfire on a control-plane node, flaredb on a store).
func (a *App) startTimeseries() error {
	c := a.cfg.Timeseries
	d := c.Durations()
	hc, err := a.httpClient()
	if err != nil {
		return err
	}
	// Dial this node's own API at the host its certificate names: the
	// bound address, or the raft address's host when it binds every
	// interface.
	host, port, _ := net.SplitHostPort(a.api.addr())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host, _, _ = net.SplitHostPort(a.node.RaftAddress())
	}
	self := net.JoinHostPort(host, port)
	scheme := "http://"
	if a.cfg.Network.TLS.Enabled() {
		scheme = "https://"
	}
	opts := []client.Option{client.WithHTTPClient(hc)}
	if a.store != nil {
		opts = append(opts, client.WithLocalStoreID(a.cfg.EffectiveStoreID()))
	}
	kv, err := client.New(scheme+self, opts...)
	if err != nil {
		return err
	}
	db, err := tsdb.New(tsdb.Config{
		KV: kv, Namespace: c.Namespace, Retention: d.Retention, OutOfOrderWindow: d.OutOfOrderWindow,
		WriteTimeout: d.WriteTimeout, Logger: a.log, Registry: a.reg,
	})
	if err != nil {
		kv.Close()
		return err
	}
	ts := &timeseries{kv: kv}
	ts.api = tsdb.NewAPI(db, tsdb.APIConfig{MaxSamples: c.MaxSamples, Timeout: d.QueryTimeout, Version: a.opts.Version, Logger: a.log, Registry: a.reg})
	ctx, cancel := context.WithCancel(context.Background())
	ts.stop = cancel
	job := "flaredb"
	if a.cf != nil { // only control-plane nodes maintain the data
		job = "chainfire"
		ts.wg.Go(func() {
			db.Maintain(ctx, d.CompactInterval, func() bool {
				leader, _, ok := a.node.Leader(raftnode.MetadataShardID)
				return ok && leader == a.replicaID
			})
		})
	}
	if d.SelfScrapeInterval > 0 {
		ts.wg.Go(func() {
			db.ScrapeSelf(ctx, tsdb.SelfScrape{Gatherer: a.reg, Interval: d.SelfScrapeInterval, Instance: self, Job: job})
		})
	}
	a.ts = ts
	return nil
}

// handler serves Prometheus's API paths.
func (ts *timeseries) handler() http.Handler { return ts.api.Handler() }

// close stops the maintenance and self-scrape loops and the FlareDB
// client.
func (ts *timeseries) close() {
	ts.stop()
	ts.wg.Wait()
	ts.kv.Close()
}
