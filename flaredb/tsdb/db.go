package tsdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/centra-cloud/centra/flaredb/client"
)

// KV is what the TSDB needs of FlareDB; *client.Client implements it.
type KV interface {
	Get(ctx context.Context, ns string, key []byte) ([]byte, bool, error)
	Put(ctx context.Context, ns string, key, value []byte) error
	BatchGet(ctx context.Context, ns string, keys [][]byte) ([]client.KvPair, error)
	BatchPut(ctx context.Context, ns string, pairs []client.KvPair) error
	CompareAndSwap(ctx context.Context, ns string, key, prev []byte, prevNotExist bool, value []byte) (bool, []byte, bool, error)
	ScanFunc(ctx context.Context, ns string, start, end []byte, opts client.ScanOptions, fn func(client.KvPair) bool) error
	DeleteRange(ctx context.Context, ns string, start, end []byte) error
}

var _ KV = (*client.Client)(nil)

// Config configures a DB.
type Config struct {
	// KV is the FlareDB client.
	KV KV
	// Namespace is the FlareDB namespace holding the time series.
	Namespace string
	// Retention is how long samples are kept.
	Retention time.Duration
	// OutOfOrderWindow is how long after a window's end raw samples are
	// still written for it; later samples merge into its chunk directly.
	OutOfOrderWindow time.Duration
	// WriteTimeout bounds one remote-write request's writes; the
	// compactor's safety margin is derived from it.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	Registry     prometheus.Registerer
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Errors of the TSDB.
var (
	// ErrStorage wraps a FlareDB failure: retryable (HTTP 503).
	ErrStorage = errors.New("tsdb: storage unavailable")
	// ErrTooManySamples: a select would load more samples than allowed.
	ErrTooManySamples = errors.New("tsdb: query loads too many samples")
)

// batchKeys bounds the keys of one BatchPut/BatchGet call (stores refuse
// more than 10,000 keys of one region in one request).
const batchKeys = 5000

// DB is a time-series database on a FlareDB namespace.
type DB struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	mu     sync.RWMutex
	ids    map[string]uint64        // encoded label set -> series ID
	series map[uint64]labels.Labels // series ID -> labels (immutable once created)
	meta   map[string]string        // metric -> encoded metadata this node wrote

	activeMu sync.Mutex
	active   map[uint64]int64 // series ID -> when this node last wrote a sample of it (unix ms)
}

// maxCached bounds each in-memory cache; past it the cache starts over.
const maxCached = 1 << 20

// New checks cfg and returns a DB; it does no I/O.
func New(cfg Config) (*DB, error) {
	if cfg.KV == nil || cfg.Namespace == "" {
		return nil, errors.New("tsdb: KV and Namespace are required")
	}
	if cfg.Retention <= 0 || cfg.OutOfOrderWindow < 0 || cfg.WriteTimeout <= 0 {
		return nil, fmt.Errorf("tsdb: retention %v, out-of-order window %v and write timeout %v must be positive", cfg.Retention, cfg.OutOfOrderWindow, cfg.WriteTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	db := &DB{cfg: cfg, log: cfg.Logger.With("component", "tsdb"), ids: map[string]uint64{}, series: map[uint64]labels.Labels{}, active: map[uint64]int64{}}
	m, err := newMetrics(cfg.Registry, db.activeSeries)
	if err != nil {
		return nil, err
	}
	db.m = m
	return db, nil
}

// activeWindow is how long a series counts as active after its last
// sample was written.
const activeWindow = time.Hour

// touch records that the series ids were written now.
func (db *DB) touch(ids []uint64) {
	now := db.cfg.Now().UnixMilli()
	db.activeMu.Lock()
	defer db.activeMu.Unlock()
	for _, id := range ids {
		db.active[id] = now
	}
}

// activeSeries counts the series written in the last activeWindow and
// forgets the others.
func (db *DB) activeSeries() float64 {
	since := db.cfg.Now().Add(-activeWindow).UnixMilli()
	db.activeMu.Lock()
	defer db.activeMu.Unlock()
	maps.DeleteFunc(db.active, func(_ uint64, t int64) bool { return t < since })
	return float64(len(db.active))
}

func storageErr(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrStorage, op, err)
}

func (db *DB) cachedID(enc string) (uint64, bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	id, ok := db.ids[enc]
	return id, ok
}

func (db *DB) cacheSeries(id uint64, enc string, ls labels.Labels) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if len(db.ids) >= maxCached {
		db.ids = map[string]uint64{}
	}
	if len(db.series) >= maxCached {
		db.series = map[uint64]labels.Labels{}
	}
	if enc != "" {
		db.ids[enc] = id
	}
	db.series[id] = ls
}

func (db *DB) cachedLabels(id uint64) (labels.Labels, bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	ls, ok := db.series[id]
	return ls, ok
}

// watermark returns the window below which every raw sample has been
// compacted into chunks.
func (db *DB) watermark(ctx context.Context) (int64, error) {
	v, found, err := db.cfg.KV.Get(ctx, db.cfg.Namespace, watermarkKey())
	if err != nil {
		return 0, storageErr("read the compaction watermark", err)
	}
	if !found || len(v) != tsLen {
		return minTime, nil
	}
	return decTime(v), nil
}

// minTime is the earliest window (the watermark before any compaction).
const minTime = -1 << 63
