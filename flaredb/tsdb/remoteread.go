package tsdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"slices"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// streamedChunkSamples is the most samples of one chunk in a streamed
// response (Prometheus's own head chunks hold 120).
const streamedChunkSamples = 120

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// serveRead is remote read (POST /api/v1/read): SAMPLES, or
// STREAMED_XOR_CHUNKS when the client lists it first.
func (a *API) serveRead(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "remote read: use POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := readSnappy(r.Body)
	if err != nil {
		http.Error(w, "remote read: "+err.Error(), http.StatusBadRequest)
		return
	}
	var req prompb.ReadRequest
	if err := req.Unmarshal(body); err != nil {
		http.Error(w, "remote read: body is not a prometheus.ReadRequest: "+err.Error(), http.StatusBadRequest)
		return
	}
	streamed := len(req.AcceptedResponseTypes) > 0 && req.AcceptedResponseTypes[0] == prompb.ReadRequest_STREAMED_XOR_CHUNKS
	results := make([][]*series, len(req.Queries))
	for i, q := range req.Queries {
		if results[i], err = a.readQuery(r, q); err != nil {
			code := http.StatusServiceUnavailable
			if !errors.Is(err, ErrStorage) {
				code = http.StatusBadRequest
			}
			http.Error(w, fmt.Sprintf("remote read: query %d: %v", i, err), code)
			return
		}
	}
	if streamed {
		a.writeStreamed(w, results)
		return
	}
	resp := prompb.ReadResponse{Results: make([]*prompb.QueryResult, len(results))}
	for i, ss := range results {
		res := &prompb.QueryResult{}
		for _, s := range ss {
			ts := &prompb.TimeSeries{Labels: prompb.FromLabels(s.ls, nil), Samples: make([]prompb.Sample, len(s.samples))}
			for j, x := range s.samples {
				ts.Samples[j] = prompb.Sample{Timestamp: x.t, Value: x.v}
			}
			res.Timeseries = append(res.Timeseries, ts)
		}
		resp.Results[i] = res
	}
	data, err := resp.Marshal()
	if err != nil {
		http.Error(w, "remote read: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Header().Set("Content-Encoding", "snappy")
	_, _ = w.Write(snappy.Encode(nil, data))
}

// readQuery selects the raw samples of one remote-read query.
func (a *API) readQuery(r *http.Request, q *prompb.Query) ([]*series, error) {
	ms := make([]*labels.Matcher, 0, len(q.Matchers))
	for _, m := range q.Matchers {
		var typ labels.MatchType
		switch m.Type {
		case prompb.LabelMatcher_EQ:
			typ = labels.MatchEqual
		case prompb.LabelMatcher_NEQ:
			typ = labels.MatchNotEqual
		case prompb.LabelMatcher_RE:
			typ = labels.MatchRegexp
		case prompb.LabelMatcher_NRE:
			typ = labels.MatchNotRegexp
		default:
			return nil, fmt.Errorf("unknown matcher type %d", m.Type)
		}
		lm, err := labels.NewMatcher(typ, m.Name, m.Value)
		if err != nil {
			return nil, err
		}
		ms = append(ms, lm)
	}
	querier, err := a.db.Queryable(a.cfg.MaxSamples).Querier(q.StartTimestampMs, q.EndTimestampMs)
	if err != nil {
		return nil, err
	}
	defer querier.Close()
	set := querier.Select(r.Context(), true, &storage.SelectHints{Start: q.StartTimestampMs, End: q.EndTimestampMs}, ms...)
	var out []*series
	for set.Next() {
		out = append(out, set.At().(*series))
	}
	return out, set.Err()
}

// writeStreamed writes ChunkedReadResponse frames: uvarint length,
// big-endian CRC32-Castagnoli of the message, message; one frame per
// series.
func (a *API) writeStreamed(w http.ResponseWriter, results [][]*series) {
	w.Header().Set("Content-Type", "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse")
	flusher, _ := w.(http.Flusher)
	for qi, ss := range results {
		for _, s := range ss {
			cs := &prompb.ChunkedSeries{Labels: prompb.FromLabels(s.ls, nil)}
			for part := range slices.Chunk(s.samples, streamedChunkSamples) {
				c := chunkenc.NewXORChunk()
				app, err := c.Appender()
				if err != nil {
					a.log.Warn("Remote read: chunk encoding failed", "err", err)
					return
				}
				for _, x := range part {
					app.Append(0, x.t, x.v)
				}
				cs.Chunks = append(cs.Chunks, prompb.Chunk{MinTimeMs: part[0].t, MaxTimeMs: part[len(part)-1].t, Type: prompb.Chunk_XOR, Data: c.Bytes()})
			}
			msg, err := (&prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{cs}, QueryIndex: int64(qi)}).Marshal()
			if err != nil {
				a.log.Warn("Remote read: encoding failed", "err", err)
				return
			}
			frame := binary.AppendUvarint(nil, uint64(len(msg)))
			frame = binary.BigEndian.AppendUint32(frame, crc32.Checksum(msg, castagnoli))
			if _, err := w.Write(append(frame, msg...)); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}
