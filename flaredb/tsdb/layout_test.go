package tsdb

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
)

// TestKeyOrder checks that raw and chunk keys sort by salt, window, series,
// time, with negative times first, and that windows floor.
func TestKeyOrder(t *testing.T) {
	for _, c := range []struct{ t, want int64 }{
		{0, 0}, {1, 0}, {windowMs - 1, 0}, {windowMs, windowMs}, {-1, -windowMs}, {-windowMs, -windowMs}, {-windowMs - 1, -2 * windowMs},
	} {
		if got := windowOf(c.t); got != c.want {
			t.Errorf("windowOf(%d) = %d, want %d", c.t, got, c.want)
		}
	}
	id := uint64(0x0102030405060708)
	ts := []int64{-maxAbsTime, -windowMs - 5, -1, 0, 1, windowMs, 5 * windowMs}
	for i := 1; i < len(ts); i++ {
		if bytes.Compare(rawKey(id, ts[i-1]), rawKey(id, ts[i])) >= 0 {
			t.Errorf("raw key of %d does not sort before %d", ts[i-1], ts[i])
		}
		if w, gotID, gotT, ok := parseRawKey(rawKey(id, ts[i])); !ok || gotID != id || gotT != ts[i] || w != windowOf(ts[i]) {
			t.Errorf("parseRawKey(rawKey(%d)) = %d %x %d %v", ts[i], w, gotID, gotT, ok)
		}
	}
	if salt(id) != 0x01 || rawKey(id, 0)[2] != 0x01 || chunkKey(id, 0)[2] != 0x01 {
		t.Errorf("salt is not the ID's top byte")
	}
	start, end := rawSeriesRange(id, 0, 10, 20)
	for _, c := range []struct {
		t  int64
		in bool
	}{{9, false}, {10, true}, {20, true}, {21, false}} {
		k := rawKey(id, c.t)
		if in := bytes.Compare(k, start) >= 0 && bytes.Compare(k, end) < 0; in != c.in {
			t.Errorf("raw key of %d in [10, 20] range = %v, want %v", c.t, in, c.in)
		}
	}
	// Index keys of a name never mix with another name sharing a prefix.
	if bytes.HasPrefix(indexKey("job", "a", id), indexPrefix("jo", "")) || bytes.HasPrefix(valueKey("jobx", "a"), valuesPrefix("job")) {
		t.Error("index prefixes of different names overlap")
	}
	if got := prefixEnd([]byte{1, 0xff}); !bytes.Equal(got, []byte{2}) {
		t.Errorf("prefixEnd = %x", got)
	}
}

// TestChunksRoundTrip encodes more samples than one XOR chunk holds,
// with NaNs of several payloads, and merges duplicates newest-wins.
func TestChunksRoundTrip(t *testing.T) {
	var s []sample
	for i := range maxChunkSamples + 100 {
		v := float64(i % 7)
		switch i % 1000 {
		case 1:
			v = math.Float64frombits(value.StaleNaN)
		case 2:
			v = math.NaN()
		}
		s = append(s, sample{int64(i) * 15000, v})
	}
	b, err := encodeChunks(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeChunks(nil, b)
	if err != nil || len(got) != len(s) {
		t.Fatalf("decoded %d samples, %v; want %d", len(got), err, len(s))
	}
	for i := range s {
		if got[i].t != s[i].t || math.Float64bits(got[i].v) != math.Float64bits(s[i].v) {
			t.Fatalf("sample %d = %v, want %v", i, got[i], s[i])
		}
	}
	if _, err := decodeChunks(nil, []byte{9}); err == nil {
		t.Error("unknown chunk format accepted")
	}
	merged := merge([]sample{{1, 1}, {2, 2}, {4, 4}}, sortDedup([]sample{{3, 30}, {2, 20}, {2, 21}, {5, 50}}))
	want := []sample{{1, 1}, {2, 21}, {3, 30}, {4, 4}, {5, 50}}
	if len(merged) != len(want) {
		t.Fatalf("merge = %v, want %v", merged, want)
	}
	for i := range want {
		if merged[i] != want[i] {
			t.Fatalf("merge = %v, want %v", merged, want)
		}
	}
}

func TestLabelsRoundTripAndChecks(t *testing.T) {
	ls := labels.FromStrings("__name__", "up", "job", "a=b,\"c\"", "z", "")
	got, err := decodeLabels(encodeLabels(ls))
	if err != nil || !labels.Equal(got, ls) {
		t.Fatalf("decode(encode(%s)) = %s, %v", ls, got, err)
	}
	if _, err := decodeLabels([]byte{5, 'a'}); err == nil {
		t.Error("truncated label set accepted")
	}
	for _, c := range []struct {
		ls   labels.Labels
		want string
	}{
		{labels.FromStrings("__name__", "up"), ""},
		{labels.EmptyLabels(), "no labels"},
		{labels.FromStrings("job", "a"), "no metric name"},
		{labels.FromStrings("__name__", "up", "job", "a\x00b"), "NUL byte"},
	} {
		err := checkLabels(c.ls)
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("checkLabels(%s) = %v, want %q", c.ls, err, c.want)
		}
	}
}
