package tsdb

import (
	"context"
	"encoding/binary"
	"strings"

	"github.com/prometheus/prometheus/prompb"

	"github.com/centra-cloud/centra/flaredb/client"
)

// Metadata describes a metric family (type, help, unit) as remote write
// carries it and /api/v1/metadata answers it.
type Metadata struct {
	Metric string `json:"-"`
	Type   string `json:"type"`
	Help   string `json:"help"`
	Unit   string `json:"unit"`
}

// metricTypeV1 maps remote write 1.0's enum to Prometheus's type names.
func metricTypeV1(t prompb.MetricMetadata_MetricType) string {
	return strings.ToLower(prompb.MetricMetadata_MetricType_name[int32(t)])
}

func encodeMetadata(m Metadata) []byte {
	var b []byte
	for _, s := range []string{m.Type, m.Help, m.Unit} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeMetadata(metric string, b []byte) (Metadata, bool) {
	var f [3]string
	for i := range f {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return Metadata{}, false
		}
		f[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	return Metadata{Metric: metric, Type: f[0], Help: f[1], Unit: f[2]}, true
}

// WriteMetadata stores metric metadata (last write wins), skipping what
// this node wrote unchanged before.
func (db *DB) WriteMetadata(ctx context.Context, ms []Metadata) error {
	var pairs []client.KvPair
	db.mu.Lock()
	if db.meta == nil {
		db.meta = map[string]string{}
	}
	for _, m := range ms {
		v := encodeMetadata(m)
		if m.Metric == "" || db.meta[m.Metric] == string(v) {
			continue
		}
		pairs = append(pairs, client.KvPair{Key: metaKey(m.Metric), Value: v})
	}
	db.mu.Unlock()
	if len(pairs) == 0 {
		return nil
	}
	if err := db.cfg.KV.BatchPut(ctx, db.cfg.Namespace, pairs); err != nil {
		return storageErr("write metadata", err)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, p := range pairs {
		db.meta[string(p.Key[2:])] = string(p.Value)
	}
	return nil
}

// Metadata returns the stored metadata of metric, or of every metric when
// metric is empty, at most limit metrics (0: no limit).
func (db *DB) Metadata(ctx context.Context, metric string, limit int) (map[string][]Metadata, error) {
	start, end := metaPrefix(), prefixEnd(metaPrefix())
	if metric != "" {
		start = metaKey(metric)
		end = append(metaKey(metric), 0)
	}
	out := map[string][]Metadata{}
	err := db.cfg.KV.ScanFunc(ctx, db.cfg.Namespace, start, end, client.ScanOptions{Limit: limit}, func(p client.KvPair) bool {
		name := string(p.Key[2:])
		if m, ok := decodeMetadata(name, p.Value); ok {
			out[name] = []Metadata{m}
		}
		return true
	})
	if err != nil {
		return nil, storageErr("read metadata", err)
	}
	return out, nil
}
