package promqlcompat

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"

	"github.com/centra-cloud/centra/flaredb/tsdb"
	"github.com/centra-cloud/centra/flaredb/tsdb/tsdbtest"
)

// pqlStorage is the storage.Storage promqltest loads its scripts into:
// appends go through DB.Write, queries through DB.Queryable, over an
// in-memory KV.
type pqlStorage struct {
	db *tsdb.DB
}

func (s *pqlStorage) Querier(mint, maxt int64) (storage.Querier, error) {
	return s.db.Queryable(0).Querier(mint, maxt)
}

func (s *pqlStorage) ChunkQuerier(int64, int64) (storage.ChunkQuerier, error) {
	return nil, errors.New("tsdb: chunk queriers are not supported")
}

func (s *pqlStorage) Appender(context.Context) storage.Appender {
	panic("promqltest loads through AppenderV2")
}

func (s *pqlStorage) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &pqlAppender{db: s.db, ctx: ctx, pending: map[string]*tsdb.Series{}}
}

func (s *pqlStorage) StartTime() (int64, error) { return 0, nil }
func (s *pqlStorage) Close() error              { return nil }

type pqlAppender struct {
	db      *tsdb.DB
	ctx     context.Context
	pending map[string]*tsdb.Series
}

func (a *pqlAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	if h != nil || fh != nil {
		return 0, errors.New("tsdb: native histograms are not supported")
	}
	s, ok := a.pending[ls.String()]
	if !ok {
		s = &tsdb.Series{Labels: ls}
		a.pending[ls.String()] = s
	}
	s.Samples = append(s.Samples, tsdb.Sample{T: t, V: v})
	return 0, nil
}

func (a *pqlAppender) Commit() error {
	ss := make([]tsdb.Series, 0, len(a.pending))
	for _, s := range a.pending {
		ss = append(ss, *s)
	}
	return a.db.Write(a.ctx, ss)
}

func (a *pqlAppender) Rollback() error { clear(a.pending); return nil }

// promqlScripts is where Go keeps Prometheus's PromQL test scripts.
func promqlScripts(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/prometheus/prometheus").Output()
	if err != nil {
		t.Skipf("cannot locate the prometheus module: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "promql", "promqltest", "testdata")
}

// skippedScripts are not run at all, with the reason.
var skippedScripts = map[string]string{
	"native_histograms.test": "native histograms are not stored",
	"start_timestamps.test":  "start timestamps (created timestamps) are not stored",
}

// TestPromQLScripts runs Prometheus's own PromQL test scripts with this
// package's storage underneath (the same engine options as Prometheus's
// tests). Sections (between "clear" commands) that load native histograms
// are left out; every other section runs.
func TestPromQLScripts(t *testing.T) {
	dir := promqlScripts(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.test"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no PromQL test scripts in %s: %v", dir, err)
	}
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	// Two clocks: with the present, the scripts' samples (near 1970) are
	// in closed windows and merge into XOR chunks at once; at the epoch
	// every window is still open and they stay raw keys.
	for mode, now := range map[string]time.Time{"chunks": time.Now(), "raw": time.Unix(0, 0)} {
		for _, f := range files {
			name := filepath.Base(f)
			t.Run(mode+"/"+name, func(t *testing.T) {
				if why, ok := skippedScripts[name]; ok {
					t.Skip(why)
				}
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				script, kept, dropped := withoutNativeHistograms(string(b))
				t.Logf("%d sections run, %d with native histograms left out", kept, dropped)
				promqltest.RunTestWithStorage(t, script, engine, func(t testing.TB) storage.Storage {
					db, err := tsdb.New(tsdb.Config{KV: tsdbtest.NewMemKV(), Namespace: "ts", Retention: 100 * 365 * 24 * time.Hour, OutOfOrderWindow: time.Hour, WriteTimeout: time.Minute, Now: func() time.Time { return now }})
					if err != nil {
						t.Fatal(err)
					}
					return &pqlStorage{db: db}
				})
			})
		}
	}
}

// withoutNativeHistograms drops the sections of a script (separated by
// "clear" lines) that use the native histogram notation {{...}}.
func withoutNativeHistograms(script string) (string, int, int) {
	var kept []string
	dropped := 0
	for sec := range strings.SplitSeq(script, "\nclear\n") {
		if strings.Contains(sec, "{{") {
			dropped++
			continue
		}
		kept = append(kept, sec)
	}
	return strings.Join(kept, "\nclear\n"), len(kept), dropped
}
