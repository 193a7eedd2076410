package tsdb

import (
	"context"
	"fmt"
	"time"

	"github.com/centra-cloud/centra/shared/loop"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/util/fmtutil"
)

// SelfScrape configures ScrapeSelf.
type SelfScrape struct {
	// Gatherer is the node's metrics registry (what /metrics serves).
	Gatherer prometheus.Gatherer
	// Interval is the time between scrapes.
	Interval time.Duration
	// Instance and Job label every series, as a Prometheus scraping the
	// node would.
	Instance, Job string
}

// ScrapeSelf writes the node's own metrics into the DB every interval
// until ctx ends, as a Prometheus scraping /metrics would store them:
// histograms and summaries as their _bucket/_sum/_count series, every
// series labelled with instance and job (a metric's own job label
// becomes exported_job), every sample stamped with the scrape time, and
// up = 1. A failed scrape is logged; the next one is tried on time.
func (db *DB) ScrapeSelf(ctx context.Context, cfg SelfScrape) {
	loop.Every(ctx, cfg.Interval, func(time.Time) {
		if err := db.scrapeOnce(ctx, cfg); err != nil && ctx.Err() == nil {
			db.log.Warn("Self-scrape failed; trying again at the next interval", "err", err, "interval", cfg.Interval)
		}
	})
}

func (db *DB) scrapeOnce(ctx context.Context, cfg SelfScrape) error {
	now := db.cfg.Now().UnixMilli()
	mfs, err := cfg.Gatherer.Gather()
	if err != nil && len(mfs) == 0 {
		return fmt.Errorf("gather metrics: %w", err)
	}
	byName := make(map[string]*dto.MetricFamily, len(mfs)+1)
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	upName, upHelp, one := "up", "1 if the node scraped itself (self_scrape_interval).", 1.0
	byName[upName] = &dto.MetricFamily{Name: &upName, Help: &upHelp, Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &one}}}}
	req, err := fmtutil.MetricFamiliesToWriteRequest(byName, map[string]string{"instance": cfg.Instance, "job": cfg.Job})
	if err != nil {
		return fmt.Errorf("convert metrics to samples: %w", err)
	}
	for i := range req.Timeseries {
		for j := range req.Timeseries[i].Samples {
			req.Timeseries[i].Samples[j].Timestamp = now
		}
	}
	d, err := decodeRequestV1(req)
	if err != nil {
		return err
	}
	ctx, cancel := db.writeContext(ctx)
	defer cancel()
	if err := db.Write(ctx, d.series); err != nil {
		return err
	}
	return db.WriteMetadata(ctx, d.metadata)
}
