package config

import (
	"time"

	"github.com/prometheus/common/model"
)

// Timeseries configures FlareDB's time-series database (flaredb/tsdb):
// remote write/read and the Prometheus query API on every node's API
// listener.
type Timeseries struct {
	// Namespace is the FlareDB namespace holding the series; its mode
	// comes from [namespace_modes].
	Namespace string `koanf:"namespace" help:"FlareDB namespace holding the time series; its consistency comes from [namespace_modes] (strong if unlisted)."`
	// Retention is how long samples are kept.
	Retention string `koanf:"retention" help:"How long samples are kept, as a Prometheus duration (15d, 12h, 1w); older hours are range-deleted."`
	// OutOfOrderWindow is how late a sample may arrive and still take the
	// cheap raw path (later ones are merged into chunks directly).
	OutOfOrderWindow string `koanf:"out_of_order_window" help:"How long after an hour ends its samples are still written raw (later ones merge into the hour's chunk directly); a Prometheus duration, 0s to 1d."`
	// CompactInterval is how often raw samples are compacted into chunks.
	CompactInterval string `koanf:"compact_interval" help:"How often the metadata shard's leader compacts raw samples into XOR chunks and applies retention; a Prometheus duration, 1s to 1d."`
	// MaxSamples is the most samples one query may hold in memory.
	MaxSamples int `koanf:"max_samples" help:"Most samples one PromQL query may load or hold in memory (Prometheus --query.max-samples), >= 1."`
	// QueryTimeout bounds one query.
	QueryTimeout string `koanf:"query_timeout" help:"Longest a PromQL query may run (Prometheus --query.timeout); a Prometheus duration, 1s to 1d."`
	// WriteTimeout bounds one remote-write request.
	WriteTimeout string `koanf:"write_timeout" help:"Longest a remote-write request may take to commit before it is answered 503 (the sender retries); a Prometheus duration, 1s to 10m."`
	// SelfScrapeInterval, when not 0s, makes the node write its own
	// metrics into the time series every interval.
	SelfScrapeInterval string `koanf:"self_scrape_interval" help:"How often the node writes its own /metrics into the time series (job chainfire on a control-plane node, flaredb on a store; instance is the API address), so PromQL over centra's own metrics works without a Prometheus; 0s (default) turns it off, else 1s to 1d."`
}

func defaultTimeseries() Timeseries {
	return Timeseries{
		Namespace:          "timeseries",
		Retention:          "15d",
		OutOfOrderWindow:   "10m",
		CompactInterval:    "1m",
		MaxSamples:         50_000_000,
		QueryTimeout:       "2m",
		WriteTimeout:       "30s",
		SelfScrapeInterval: "0s",
	}
}

// TimeseriesDurations are the parsed durations of [timeseries].
type TimeseriesDurations struct {
	Retention, OutOfOrderWindow, CompactInterval, QueryTimeout, WriteTimeout, SelfScrapeInterval time.Duration
}

// Durations parses the durations of [timeseries]; Validate has checked
// them.
func (t Timeseries) Durations() TimeseriesDurations {
	p := func(s string) time.Duration { d, _ := model.ParseDuration(s); return time.Duration(d) }
	return TimeseriesDurations{p(t.Retention), p(t.OutOfOrderWindow), p(t.CompactInterval), p(t.QueryTimeout), p(t.WriteTimeout), p(t.SelfScrapeInterval)}
}

func (v *validator) timeseries() {
	t := v.c.Timeseries
	if t.Namespace == "" {
		v.fail("timeseries.namespace", "empty; name the FlareDB namespace for time series, e.g. \"timeseries\"")
	}
	day := 24 * time.Hour
	for _, d := range []struct {
		key, val string
		lo, hi   time.Duration
	}{
		{"timeseries.retention", t.Retention, time.Hour, 100 * 365 * day},
		{"timeseries.out_of_order_window", t.OutOfOrderWindow, 0, day},
		{"timeseries.compact_interval", t.CompactInterval, time.Second, day},
		{"timeseries.query_timeout", t.QueryTimeout, time.Second, day},
		{"timeseries.write_timeout", t.WriteTimeout, time.Second, 10 * time.Minute},
		{"timeseries.self_scrape_interval", t.SelfScrapeInterval, 0, day},
	} {
		got, err := model.ParseDuration(d.val)
		switch {
		case err != nil:
			v.fail(d.key, "%q is not a duration; use a Prometheus duration such as 30s, 10m, 15d", d.val)
		case time.Duration(got) < d.lo || time.Duration(got) > d.hi:
			v.fail(d.key, "%s is out of range; allowed %s to %s", d.val, model.Duration(d.lo), model.Duration(d.hi))
		}
	}
	if d := t.Durations().SelfScrapeInterval; d > 0 && d < time.Second {
		v.fail("timeseries.self_scrape_interval", "%s is too short; use 0s to turn self-scraping off, or at least 1s", t.SelfScrapeInterval)
	}
	if t.MaxSamples < 1 {
		v.fail("timeseries.max_samples", "%d must be >= 1", t.MaxSamples)
	}
}
