package tsdb

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// Remote-write message types (the proto parameter of Content-Type).
const (
	protoV1 = "prometheus.WriteRequest"
	protoV2 = "io.prometheus.write.v2.Request"

	// maxWriteBody bounds a decompressed remote-write body.
	maxWriteBody = 64 << 20
)

// badRequest is an error of the client's input (HTTP 4xx).
type badRequest struct {
	code int
	msg  string
}

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error {
	return &badRequest{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// decoded is a validated remote-write request.
type decoded struct {
	series     []Series
	metadata   []Metadata
	histograms int
	samples    int
}

// ServeWrite is the remote-write receiver (POST /api/v1/write), 1.0 and
// 2.0. It answers 204 only after every sample is committed (Write), 4xx
// for a malformed request (which Prometheus drops) and 503 for storage
// trouble (which it retries).
func (db *DB) ServeWrite(w http.ResponseWriter, r *http.Request) {
	d, v2, err := decodeWrite(r)
	if err == nil {
		ctx, cancel := db.writeContext(r.Context())
		err = db.Write(ctx, d.series)
		if err == nil && len(d.metadata) > 0 {
			err = db.WriteMetadata(ctx, d.metadata)
		}
		cancel()
	}
	if err == nil && d.histograms > 0 && !v2 {
		err = badf("native histograms are not supported: %d histogram samples dropped (the %d float samples of the request are stored)", d.histograms, d.samples)
	}
	if v2 && d != nil {
		written := 0
		if err == nil || errors.As(err, new(*badRequest)) {
			written = d.samples
		}
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(written))
		w.Header().Set("X-Prometheus-Remote-Write-Histograms-Written", "0")
		w.Header().Set("X-Prometheus-Remote-Write-Exemplars-Written", "0")
	}
	if err != nil {
		var bad *badRequest
		if errors.As(err, &bad) {
			db.m.writeErrors.WithLabelValues("bad_request").Inc()
			http.Error(w, "remote write: "+bad.msg, bad.code)
			return
		}
		db.m.writeErrors.WithLabelValues("storage").Inc()
		db.log.Warn("Remote write failed; the sender will retry", "err", err)
		http.Error(w, "remote write: "+err.Error()+" (retry)", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeWrite reads and validates a remote-write body; v2 tells the
// message type.
func decodeWrite(r *http.Request) (*decoded, bool, error) {
	if r.Method != http.MethodPost {
		return nil, false, &badRequest{http.StatusMethodNotAllowed, "use POST"}
	}
	v2, err := writeMessageType(r.Header.Get("Content-Type"))
	if err != nil {
		return nil, false, err
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		return nil, v2, &badRequest{http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding %q is not supported; use snappy", enc)}
	}
	body, err := readSnappy(r.Body)
	if err != nil {
		return nil, v2, err
	}
	if v2 {
		d, err := decodeV2(body)
		return d, true, err
	}
	d, err := decodeV1(body)
	return d, false, err
}

// readSnappy reads a snappy block-compressed body.
func readSnappy(body io.Reader) ([]byte, error) {
	comp, err := io.ReadAll(io.LimitReader(body, maxWriteBody+1))
	if err != nil {
		return nil, badf("reading the body: %v", err)
	}
	n, err := snappy.DecodedLen(comp)
	if err != nil {
		return nil, badf("body is not snappy block format: %v", err)
	}
	if n > maxWriteBody {
		return nil, &badRequest{http.StatusRequestEntityTooLarge, fmt.Sprintf("decompressed body is %d bytes; the limit is %d (lower queue_config.max_samples_per_send)", n, maxWriteBody)}
	}
	out, err := snappy.Decode(nil, comp)
	if err != nil {
		return nil, badf("body is not snappy block format: %v", err)
	}
	return out, nil
}

func writeMessageType(ct string) (v2 bool, err error) {
	if ct == "" {
		return false, nil
	}
	mt, params, perr := mime.ParseMediaType(ct)
	if perr != nil || mt != "application/x-protobuf" {
		return false, &badRequest{http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q is not supported; use application/x-protobuf", ct)}
	}
	switch params["proto"] {
	case "", protoV1:
		return false, nil
	case protoV2:
		return true, nil
	}
	return false, &badRequest{http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: proto %q is not supported; use %s or %s", ct, params["proto"], protoV1, protoV2)}
}

func decodeV1(body []byte) (*decoded, error) {
	var req prompb.WriteRequest
	if err := req.Unmarshal(body); err != nil {
		return nil, badf("body is not a prometheus.WriteRequest: %v", err)
	}
	return decodeRequestV1(&req)
}

// decodeRequestV1 validates a 1.0 request.
func decodeRequestV1(req *prompb.WriteRequest) (*decoded, error) {
	d := &decoded{}
	sb := labels.NewScratchBuilder(16)
	for _, ts := range req.Timeseries {
		ls := ts.ToLabels(&sb, nil)
		if err := addSeries(d, ls, ts.Samples, len(ts.Histograms)); err != nil {
			return nil, err
		}
	}
	for _, m := range req.Metadata {
		d.metadata = append(d.metadata, Metadata{Metric: m.MetricFamilyName, Type: metricTypeV1(m.Type), Help: m.Help, Unit: m.Unit})
	}
	return d, nil
}

func decodeV2(body []byte) (*decoded, error) {
	var req writev2.Request
	if err := req.Unmarshal(body); err != nil {
		return nil, badf("body is not an %s: %v", protoV2, err)
	}
	d := &decoded{}
	sb := labels.NewScratchBuilder(16)
	for i, ts := range req.Timeseries {
		ls, err := ts.ToLabels(&sb, req.Symbols)
		if err != nil {
			return nil, badf("series %d: %v", i, err)
		}
		if err := addSeries(d, ls, ts.Samples, len(ts.Histograms)); err != nil {
			return nil, err
		}
		if ts.Metadata.Type != writev2.Metadata_METRIC_TYPE_UNSPECIFIED {
			md, err := ts.ToMetadata(req.Symbols)
			if err != nil {
				return nil, badf("series %s: %v", ls, err)
			}
			d.metadata = append(d.metadata, Metadata{Metric: ls.Get(labels.MetricName), Type: string(md.Type), Help: md.Help, Unit: md.Unit})
		}
	}
	return d, nil
}

// maxAbsTime bounds sample timestamps (ms), about 146 million years
// either side of 1970, so that window arithmetic cannot overflow.
const maxAbsTime = 1 << 62

// addSeries validates a series of a request and appends its float
// samples (prompb.Sample of 1.0 or writev2.Sample of 2.0).
func addSeries[S any, PS interface {
	*S
	GetTimestamp() int64
	GetValue() float64
}](d *decoded, ls labels.Labels, samples []S, histograms int) error {
	if err := checkLabels(ls); err != nil {
		return badf("%v", err)
	}
	s := Series{Labels: ls, Samples: make([]Sample, len(samples))}
	for i := range samples {
		p := PS(&samples[i])
		t := p.GetTimestamp()
		if t > maxAbsTime || t < -maxAbsTime {
			return badf("series %s: timestamp %d ms is out of range", ls, t)
		}
		s.Samples[i] = Sample{T: t, V: p.GetValue()}
	}
	d.samples += len(s.Samples)
	d.histograms += histograms
	if len(s.Samples) > 0 {
		d.series = append(d.series, s)
	}
	return nil
}
