package tsdb

import (
	"bufio"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// TestRemoteReadStreamed writes 300 samples and reads them back as
// STREAMED_XOR_CHUNKS frames (length, CRC32-Castagnoli, message).
func TestRemoteReadStreamed(t *testing.T) {
	srv, now := newTestAPI(t)
	base := now.Add(-5 * time.Minute).UnixMilli()
	ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "x"}}}
	for i := range 300 {
		ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: base + int64(i)*1000, Value: float64(i)})
	}
	raw, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}}).Marshal()
	if resp := post(t, srv, "/api/v1/write", "application/x-protobuf", snappy.Encode(nil, raw)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("write: %d", resp.StatusCode)
	}
	rr := prompb.ReadRequest{
		Queries:               []*prompb.Query{{StartTimestampMs: base, EndTimestampMs: base + 300000, Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "x"}}}},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS},
	}
	raw, _ = rr.Marshal()
	resp := post(t, srv, "/api/v1/read", "application/x-protobuf", snappy.Encode(nil, raw))
	if resp.StatusCode != 200 {
		t.Fatalf("read: %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	n := 0
	for {
		size, err := binary.ReadUvarint(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var crc [4]byte
		msg := make([]byte, size)
		if _, err := io.ReadFull(r, crc[:]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, msg); err != nil {
			t.Fatal(err)
		}
		if binary.BigEndian.Uint32(crc[:]) != crc32.Checksum(msg, crc32.MakeTable(crc32.Castagnoli)) {
			t.Fatal("frame checksum mismatch")
		}
		var cr prompb.ChunkedReadResponse
		if err := cr.Unmarshal(msg); err != nil {
			t.Fatal(err)
		}
		for _, s := range cr.ChunkedSeries {
			for _, c := range s.Chunks {
				ch, err := chunkenc.FromData(chunkenc.EncXOR, c.Data)
				if err != nil {
					t.Fatal(err)
				}
				it := ch.Iterator(nil)
				for it.Next() == chunkenc.ValFloat {
					if tt, v := it.At(); tt != base+int64(n)*1000 || v != float64(n) {
						t.Fatalf("sample %d = %d %v", n, tt, v)
					}
					n++
				}
			}
		}
	}
	if n != 300 {
		t.Fatalf("read %d samples, want 300", n)
	}
}
