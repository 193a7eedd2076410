//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestTimeseriesAckedSamplesSurviveKill remote-writes while the store
// leading the data is killed with SIGKILL: every sample answered 204 must
// be returned by remote read afterwards (answers other than 204 are
// allowed while a new leader is elected, and are not counted).
func TestTimeseriesAckedSamplesSurviveKill(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithStores(3), framework.WithLogLevel("warn"))
	cp := c.Node(0)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const series, batches = 20, 120
	base := time.Now().Add(-10 * time.Minute).UnixMilli()
	var acked []int64 // timestamps of the batches answered 204
	var victim *framework.Node
	for b := range batches {
		ts := base + int64(b)*1000
		req := prompb.WriteRequest{}
		for s := range series {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "durable_total"}, {Name: "series", Value: strconv.Itoa(s)}},
				Samples: []prompb.Sample{{Timestamp: ts, Value: float64(b)}},
			})
		}
		raw, _ := req.Marshal()
		if code := tsTryWrite(ctx, cp, snappy.Encode(nil, raw)); code == http.StatusNoContent {
			acked = append(acked, ts)
		}
		if b == batches/3 {
			victim = leaderStore(t, ctx, c)
			t.Logf("kill -9 store %d (leads regions) after %d acknowledged batches", victim.StoreID(), len(acked))
			if err := victim.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("%d of %d batches acknowledged", len(acked), batches)
	if len(acked) < batches/2 {
		t.Fatalf("only %d of %d batches acknowledged with one store of three down", len(acked), batches)
	}
	// Remote read returns raw samples: every acknowledged timestamp of
	// every series must be there.
	rr := prompb.ReadRequest{Queries: []*prompb.Query{{
		StartTimestampMs: base, EndTimestampMs: base + batches*1000,
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "durable_total"}},
	}}}
	raw, _ := rr.Marshal()
	framework.Eventually(t, func() error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, cp.URL()+"/api/v1/read", bytes.NewReader(snappy.Encode(nil, raw)))
		req.Header.Set("Content-Encoding", "snappy")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("remote read: %d %s", resp.StatusCode, body)
		}
		dec, err := snappy.Decode(nil, body)
		if err != nil {
			return err
		}
		var rresp prompb.ReadResponse
		if err := rresp.Unmarshal(dec); err != nil {
			return err
		}
		got := rresp.Results[0].Timeseries
		if len(got) != series {
			return fmt.Errorf("remote read returned %d series, want %d", len(got), series)
		}
		for _, s := range got {
			have := map[int64]bool{}
			for _, x := range s.Samples {
				have[x.Timestamp] = true
			}
			for _, ts := range acked {
				if !have[ts] {
					return fmt.Errorf("series %v lost the acknowledged sample at %d", s.Labels, ts)
				}
			}
		}
		return nil
	}, time.Minute)
}

// tsTryWrite remote-writes body to n and returns the status (0 when the
// request failed).
func tsTryWrite(ctx context.Context, n *framework.Node, body []byte) int {
	ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.URL()+"/api/v1/write", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
