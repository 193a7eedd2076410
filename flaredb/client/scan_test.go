package client

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	flaredbv1 "github.com/centra-cloud/centra/gen/centra/flaredb/v1"
)

func keysOf(ps []KvPair) string {
	var b strings.Builder
	for _, p := range ps {
		b.Write(p.Key)
	}
	return b.String()
}

func alphabet(fc *fakeCluster) {
	for ch := 'a'; ch <= 'z'; ch++ {
		fc.put("default", string(ch), strings.Repeat(string(ch), 2))
	}
	fc.put("before", "x", "-") // neighbour namespaces must not leak in
	fc.put("zzz", "a", "-")
}

func reversed(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

func TestScanAcrossRegions(t *testing.T) {
	fc := newFakeCluster(t, 3, "g", "p")
	alphabet(fc)
	c := fc.client()
	ctx := ctxT(t)
	const all = "abcdefghijklmnopqrstuvwxyz"
	for _, tc := range []struct {
		name       string
		start, end string
		opts       ScanOptions
		want       string
	}{
		{"all", "", "", ScanOptions{}, all},
		{"limit", "", "", ScanOptions{Limit: 10}, all[:10]},
		{"limit at a region end", "", "", ScanOptions{Limit: 6}, all[:6]},
		{"range", "c", "r", ScanOptions{}, "cdefghijklmnopq"},
		{"range from a region start", "g", "", ScanOptions{}, all[6:]},
		{"reverse", "", "", ScanOptions{Reverse: true}, reversed(all)},
		{"reverse limit", "", "", ScanOptions{Reverse: true, Limit: 12}, reversed(all)[:12]},
		{"reverse range", "c", "r", ScanOptions{Reverse: true}, reversed("cdefghijklmnopq")},
		{"reverse range ending at a region start", "a", "p", ScanOptions{Reverse: true, Limit: 11}, reversed(all[:15])[:11]},
		{"empty", "r", "c", ScanOptions{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Scan(ctx, "", []byte(tc.start), []byte(tc.end), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if keysOf(got) != tc.want {
				t.Fatalf("keys %q, want %q", keysOf(got), tc.want)
			}
			for _, p := range got {
				if string(p.Value) != strings.Repeat(string(p.Key), 2) {
					t.Fatalf("value of %q = %q", p.Key, p.Value)
				}
			}
		})
	}
	kv, err := c.Scan(ctx, "", nil, nil, ScanOptions{KeyOnly: true, Limit: 3})
	if err != nil || keysOf(kv) != "abc" || len(kv[0].Value) != 0 {
		t.Fatalf("key-only scan: %v %v", kv, err)
	}
	// ScanFunc stops when told to, and never opens the later regions.
	fc.resetCalls()
	n := 0
	err = c.ScanFunc(ctx, "", nil, nil, ScanOptions{}, func(KvPair) bool { n++; return n < 3 })
	if err != nil || n != 3 || len(fc.callsTo(0, "Scan")) != 1 {
		t.Fatalf("ScanFunc: n=%d err=%v scans=%d", n, err, len(fc.callsTo(0, "Scan")))
	}
}

// TestScanResumesAfterSplit splits the middle region while the scan reads
// the first one: the next request carries the old epoch, the store answers
// EpochNotMatch, and the scan continues in the two halves without
// duplicates or gaps.
func TestScanResumesAfterSplit(t *testing.T) {
	for _, reverse := range []bool{false, true} {
		fc := newFakeCluster(t, 3, "g", "p")
		alphabet(fc)
		c := fc.client()
		ctx := ctxT(t)
		if _, err := c.Scan(ctx, "", nil, nil, ScanOptions{Reverse: reverse}); err != nil { // warm the cache
			t.Fatal(err)
		}
		first := fc.regionOf("default", "a")
		if reverse {
			first = fc.regionOf("default", "z")
		}
		var split atomic.Bool
		fc.setHook(func(_ uint64, method string, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error) {
			if method == "Scan" && rctx.GetRegionId() == first && split.CompareAndSwap(false, true) {
				fc.split("k")
			}
			return nil, nil
		})
		fc.resetCalls()
		got, err := c.Scan(ctx, "", nil, nil, ScanOptions{Reverse: reverse})
		if err != nil {
			t.Fatal(err)
		}
		want := "abcdefghijklmnopqrstuvwxyz"
		if reverse {
			want = reversed(want)
		}
		if keysOf(got) != want {
			t.Fatalf("reverse=%v: keys %q, want %q", reverse, keysOf(got), want)
		}
		if n := len(fc.callsTo(0, "Scan")); n != 5 {
			t.Fatalf("reverse=%v: %d Scan calls, want 5 (3 regions, 1 refused, 1 more half)", reverse, n)
		}
	}
}

// TestScanResumesAfterBrokenStream breaks a region's stream after two
// pairs: the scan resumes after the last pair it returned.
func TestScanResumesAfterBrokenStream(t *testing.T) {
	for _, reverse := range []bool{false, true} {
		fc := newFakeCluster(t, 3, "g", "p")
		alphabet(fc)
		c := fc.client()
		fc.mu.Lock()
		fc.scanFail[fc.regions[fc.regionOfLocked("default", "k")].Id] = 2
		fc.mu.Unlock()
		got, err := c.Scan(ctxT(t), "", nil, nil, ScanOptions{Reverse: reverse, Limit: 20})
		if err != nil {
			t.Fatal(err)
		}
		want := "abcdefghijklmnopqrstuvwxyz"
		if reverse {
			want = reversed(want)
		}
		if keysOf(got) != want[:20] {
			t.Fatalf("reverse=%v: keys %q, want %q", reverse, keysOf(got), want[:20])
		}
	}
}

// TestScanAfterSplitWithPDLagging: the store names only the shrunk parent
// and PD learns of the new region a little later; the scan waits for it
// and still returns every key once.
func TestScanAfterSplitWithPDLagging(t *testing.T) {
	for _, reverse := range []bool{false, true} {
		fc := newFakeCluster(t, 3)
		fc.mu.Lock()
		fc.parentOnly = true
		fc.mu.Unlock()
		alphabet(fc)
		c := fc.client()
		ctx := ctxT(t)
		if _, err := c.Scan(ctx, "", nil, nil, ScanOptions{Reverse: reverse}); err != nil {
			t.Fatal(err)
		}
		fc.split("k")
		timer := time.AfterFunc(20*time.Millisecond, fc.syncPD)
		got, err := c.Scan(ctx, "", nil, nil, ScanOptions{Reverse: reverse})
		timer.Stop()
		if err != nil {
			t.Fatal(err)
		}
		want := "abcdefghijklmnopqrstuvwxyz"
		if reverse {
			want = reversed(want)
		}
		if keysOf(got) != want {
			t.Fatalf("reverse=%v: keys %q, want %q", reverse, keysOf(got), want)
		}
	}
}
