//go:build e2e && faults

package faults

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestRegisterModel checks the model on small hand-made histories,
// including that it rejects stale reads and lost writes and accepts an
// unknown write taking effect late.
func TestRegisterModel(t *testing.T) {
	op := func(client int, in input, call int64, out output, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
	}
	put := func(v string) input { return input{Kind: opPut, Key: "k", Value: v} }
	get := input{Kind: opGet, Key: "k"}
	del := input{Kind: opDelete, Key: "k"}
	cas := func(from, to string) input { return input{Kind: opCAS, Key: "k", Expect: from, Value: to} }
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"read your write", []porcupine.Operation{op(0, put("a"), 0, output{}, 1), op(1, get, 2, output{Value: "a"}, 3)}, true},
		{"stale read", []porcupine.Operation{op(0, put("a"), 0, output{}, 1), op(0, put("b"), 2, output{}, 3), op(1, get, 4, output{Value: "a"}, 5)}, false},
		{"lost write", []porcupine.Operation{op(0, put("a"), 0, output{}, 1), op(1, get, 2, output{}, 3)}, false},
		{"unknown put applied late", []porcupine.Operation{op(0, put("a"), 0, output{Unknown: true}, unknownReturn), op(1, get, 2, output{}, 3), op(1, get, 10, output{Value: "a"}, 11)}, true},
		{"unknown put never applied", []porcupine.Operation{op(0, put("a"), 0, output{Unknown: true}, unknownReturn), op(1, get, 2, output{}, 3)}, true},
		{"cas succeeds on match", []porcupine.Operation{op(0, put("a"), 0, output{}, 1), op(1, cas("a", "b"), 2, output{Succeeded: true}, 3), op(1, get, 4, output{Value: "b"}, 5)}, true},
		{"cas succeeds on mismatch", []porcupine.Operation{op(0, put("a"), 0, output{}, 1), op(1, cas("x", "b"), 2, output{Succeeded: true}, 3)}, false},
		{"cas fails on match", []porcupine.Operation{op(0, put("a"), 0, output{}, 1), op(1, cas("a", "b"), 2, output{}, 3)}, false},
		{"delete then read absent", []porcupine.Operation{op(0, put("a"), 0, output{}, 1), op(1, del, 2, output{}, 3), op(1, get, 4, output{}, 5)}, true},
		{"read after delete sees the old value", []porcupine.Operation{op(0, put("a"), 0, output{}, 1), op(1, del, 2, output{}, 3), op(1, get, 4, output{Value: "a"}, 5)}, false},
		{"cas on absent after delete", []porcupine.Operation{op(0, put("a"), 0, output{}, 1), op(1, del, 2, output{}, 3), op(1, cas("", "b"), 4, output{Succeeded: true}, 5)}, true},
		{"unknown cas either way", []porcupine.Operation{op(0, put("a"), 0, output{}, 1), op(1, cas("a", "b"), 2, output{Unknown: true}, unknownReturn), op(2, get, 4, output{Value: "a"}, 5), op(2, get, 6, output{Value: "b"}, 7)}, true},
	}
	model := registerModel.ToModel()
	for _, tt := range tests {
		if got := porcupine.CheckOperations(model, tt.ops); got != tt.want {
			t.Errorf("%s: linearizable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestScanModel checks that a scan is checked as a read of every key it
// covered: it fails a history where a scan returned a stale value or
// missed a key, and passes good ones, with and without a limit.
func TestScanModel(t *testing.T) {
	keys := []string{"a", "b", "c"}
	op := func(client int, in input, call int64, out output, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
	}
	put := func(k, v string) input { return input{Kind: opPut, Key: k, Value: v} }
	scan := func(limit int, reverse bool) input {
		return input{Kind: opScan, Start: "a", Keys: keys, Limit: limit, Reverse: reverse}
	}
	pairs := func(kv ...string) output {
		var out output
		for i := 0; i < len(kv); i += 2 {
			out.Pairs = append(out.Pairs, pair{kv[i], kv[i+1]})
		}
		return out
	}
	// a=1 then a=2, c=3; b never written.
	writes := []porcupine.Operation{op(0, put("a", "1"), 0, output{}, 1), op(0, put("a", "2"), 2, output{}, 3), op(1, put("c", "3"), 0, output{}, 3)}
	tests := []struct {
		name string
		scan porcupine.Operation
		want bool
	}{
		{"current values", op(2, scan(0, false), 4, pairs("a", "2", "c", "3"), 5), true},
		{"stale value", op(2, scan(0, false), 4, pairs("a", "1", "c", "3"), 5), false},
		{"missing key", op(2, scan(0, false), 4, pairs("a", "2"), 5), false},
		{"value of a write still in flight", op(2, scan(0, false), 1, pairs("a", "1", "c", "3"), 5), true},
		{"limit: keys past the last one not covered", op(2, scan(1, false), 4, pairs("a", "2"), 5), true},
		{"limit: a key before the last one missing", op(2, scan(1, false), 4, pairs("c", "3"), 5), false},
		{"reverse limit", op(2, scan(1, true), 4, pairs("c", "3"), 5), true},
		{"reverse limit, stale", op(2, scan(2, true), 4, pairs("c", "3", "a", "1"), 5), false},
		{"unknown scan", op(2, scan(0, false), 4, output{Unknown: true}, unknownReturn), true},
	}
	model := registerModel.ToModel()
	for _, tt := range tests {
		if got := porcupine.CheckOperations(model, append(slices.Clone(writes), tt.scan)); got != tt.want {
			t.Errorf("%s: linearizable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestScanProblems checks the scan's own checks: order, range bounds,
// limit, and no key the run never wrote.
func TestScanProblems(t *testing.T) {
	in := input{Kind: opScan, Start: "b", End: "d", Keys: []string{"b", "c"}, Limit: 2}
	rev := in
	rev.Reverse = true
	tests := []struct {
		name  string
		in    input
		pairs []pair
		want  int
	}{
		{"good", in, []pair{{"b", "1"}, {"c", "2"}}, 0},
		{"good reverse", rev, []pair{{"c", "2"}, {"b", "1"}}, 0},
		{"out of order", in, []pair{{"c", "2"}, {"b", "1"}}, 1},
		{"reverse out of order", rev, []pair{{"b", "1"}, {"c", "2"}}, 1},
		{"repeated", in, []pair{{"b", "1"}, {"b", "1"}}, 1},
		{"below the start", in, []pair{{"a", "1"}}, 1},
		{"at the end", in, []pair{{"d", "1"}}, 1},
		{"never written", in, []pair{{"bb", "1"}}, 1},
		{"over the limit", in, []pair{{"b", "1"}, {"c", "2"}, {"c", "2"}}, 2},
	}
	for _, tt := range tests {
		if got := scanProblems(tt.in, output{Pairs: tt.pairs}); len(got) != tt.want {
			t.Errorf("%s: problems %q, want %d", tt.name, got, tt.want)
		}
	}
}

// TestLostWrites checks the acknowledged-write check on the final values.
func TestLostWrites(t *testing.T) {
	op := func(in input, call int64, out output, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: in, Call: call, Output: out, Return: ret}
	}
	ops := []porcupine.Operation{
		op(input{Kind: opPut, Key: "k", Value: "a"}, 0, output{}, 1),
		op(input{Kind: opPut, Key: "k", Value: "b"}, 2, output{}, 3),
		op(input{Kind: opPut, Key: "j", Value: "c"}, 2, output{Unknown: true}, unknownReturn),
	}
	if lost := lostWrites(ops, map[string]string{"k": "b"}); len(lost) != 0 {
		t.Errorf("final b: lost %v, want none", lost)
	}
	if lost := lostWrites(ops, map[string]string{"k": "a"}); len(lost) != 1 {
		t.Errorf("final a (b overwrote it): lost %v, want put b", lost)
	}
	if lost := lostWrites(ops, map[string]string{}); len(lost) != 2 {
		t.Errorf("final absent: lost %v, want both puts", lost)
	}
	// A delete explains an absent key only for the writes it could follow.
	withDelete := append(ops, op(input{Kind: opDelete, Key: "k"}, 2, output{}, 3))
	if lost := lostWrites(withDelete, map[string]string{}); len(lost) != 0 {
		t.Errorf("final absent after a delete concurrent with put b: lost %v, want none", lost)
	}
	earlyDelete := append(ops, op(input{Kind: opDelete, Key: "k"}, 0, output{}, 1))
	if lost := lostWrites(earlyDelete, map[string]string{}); len(lost) != 1 {
		t.Errorf("final absent, delete before put b: lost %v, want put b", lost)
	}
}

// TestWatcherOrder checks that the watcher flags events out of order,
// duplicates and a revision split across two responses.
func TestWatcherOrder(t *testing.T) {
	ev := func(rev int64, key string) *clientv3.Event {
		return &clientv3.Event{Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}
	}
	tests := []struct {
		name  string
		resps [][]*clientv3.Event
		want  int
	}{
		{"in order", [][]*clientv3.Event{{ev(2, "a"), ev(3, "b")}, {ev(4, "a")}}, 0},
		{"one revision, two keys, one response", [][]*clientv3.Event{{ev(2, "a"), ev(2, "b")}, {ev(3, "a")}}, 0},
		{"duplicate", [][]*clientv3.Event{{ev(2, "a")}, {ev(2, "a")}}, 1},
		{"revision split across responses", [][]*clientv3.Event{{ev(2, "a")}, {ev(2, "b")}}, 1},
		{"out of order in a response", [][]*clientv3.Event{{ev(3, "a"), ev(2, "b")}}, 1},
		{"out of order across responses", [][]*clientv3.Event{{ev(3, "a")}, {ev(2, "b")}}, 1},
	}
	for _, tt := range tests {
		w := &watcher{}
		for _, r := range tt.resps {
			w.add(r)
		}
		if len(w.problems) != tt.want {
			t.Errorf("%s: problems %q, want %d", tt.name, w.problems, tt.want)
		}
	}
}

// TestLeaseCheck checks that only a key found gone before the end of its
// guaranteed life is a problem.
func TestLeaseCheck(t *testing.T) {
	l := &leaseChecker{}
	now := time.Now()
	l.check(now, now.Add(-time.Millisecond), "expired in time")
	if len(l.problems) != 0 {
		t.Errorf("gone after its guaranteed life: problems %q, want none", l.problems)
	}
	l.check(now, now.Add(time.Second), "expired early")
	if len(l.problems) != 1 {
		t.Errorf("gone a second before the end of its guaranteed life: problems %q, want one", l.problems)
	}
}

// TestEventualCheck checks the convergence check's parts: replicas that
// differ are reported, and a converged value must be the last
// acknowledged write's or a later one's.
func TestEventualCheck(t *testing.T) {
	w := &eventualWriter{writes: map[string][]evWrite{
		"e/k0": {{"e/k0-0", true}, {"e/k0-1", true}, {"e/k0-2", false}},
		"e/k1": {{"e/k1-0", false}},
	}}
	same := map[uint64][]replicaView{
		1: {{1, map[string]string{"e/k0": "e/k0-1"}}, {2, map[string]string{"e/k0": "e/k0-1"}}},
		2: {{3, map[string]string{"e/k1": "e/k1-0"}}, {4, map[string]string{"e/k1": "e/k1-0"}}},
	}
	if d := divergence(same); len(d) != 0 {
		t.Errorf("equal replicas: divergence %v", d)
	}
	if bad := badValues(same, w); len(bad) != 0 {
		t.Errorf("last acknowledged values: %v", bad)
	}
	differ := map[uint64][]replicaView{1: {{1, map[string]string{"e/k0": "e/k0-1"}}, {2, map[string]string{"e/k0": "e/k0-2"}}}}
	if d := divergence(differ); len(d) != 1 {
		t.Errorf("replicas differ: divergence %v, want one", d)
	}
	for _, tc := range []struct {
		views map[uint64][]replicaView
		bad   int
	}{
		{map[uint64][]replicaView{1: {{1, map[string]string{"e/k0": "e/k0-2"}}}}, 0}, // a later unacknowledged write applied
		{map[uint64][]replicaView{1: {{1, map[string]string{"e/k0": "e/k0-0"}}}}, 1}, // an acknowledged write undone
		{map[uint64][]replicaView{1: {{1, map[string]string{}}}}, 1},                 // e/k0 lost; e/k1 may be absent
		{map[uint64][]replicaView{1: {{1, map[string]string{"e/k0": "e/k0-1", "x": "y"}}}}, 1},
	} {
		if bad := badValues(tc.views, w); len(bad) != tc.bad {
			t.Errorf("%v: problems %v, want %d", tc.views, bad, tc.bad)
		}
	}
}

// TestCoverGap checks that the convergence check notices PD's regions
// leaving part of the key space out.
func TestCoverGap(t *testing.T) {
	r := func(start, end string) pdRegion { return pdRegion{StartKey: start, EndKey: end} }
	for _, tc := range []struct {
		rs   []pdRegion
		want bool // a gap
	}{
		{[]pdRegion{r("", "")}, false},
		{[]pdRegion{r("6B", ""), r("", "6B")}, false},
		{[]pdRegion{r("", "6B")}, true},              // the child from 6B on is unknown
		{[]pdRegion{r("", "6B"), r("7A", "")}, true}, // 6B..7A unknown
		{[]pdRegion{r("", "6B"), r("6B", ""), r("6B", "7A")}, true},
		{nil, true},
	} {
		if err := coverGap(tc.rs); (err != nil) != tc.want {
			t.Errorf("%v: coverGap = %v, want a gap %v", tc.rs, err, tc.want)
		}
	}
}

// TestParseKinds checks -faults parsing: "all" and lists keep only the
// kinds of the store, an unknown name and a list of which nothing applies
// are errors naming what was wrong.
func TestParseKinds(t *testing.T) {
	for _, tc := range []struct {
		s    string
		of   []faultKind
		want []faultKind
		err  string // a part of the error; "" for none
	}{
		{"all", chainfireKinds, chainfireKinds, ""},
		{"all", flaredbKinds, flaredbKinds, ""},
		{"kill-leader,split-region", chainfireKinds, []faultKind{killLeader}, ""},
		{"split-region,kill-leader", flaredbKinds, []faultKind{splitRegion, killLeader}, ""},
		{"churn-follower", flaredbKinds, nil, "none of the faults [churn-follower] applies here"},
		{"kill-leader,no-such", chainfireKinds, nil, `unknown fault "no-such"`},
	} {
		got, err := parseKinds(tc.s, tc.of)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseKinds(%q): error %v, want one containing %q", tc.s, err, tc.err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("parseKinds(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

// TestLongestStall checks the unavailability measure: the longest time
// without an answer, unknown outcomes not counting as answers.
func TestLongestStall(t *testing.T) {
	ops := []porcupine.Operation{
		{Call: 0, Return: 10},
		{Call: 5, Return: unknownReturn},
		{Call: 12, Return: 50},
		{Call: 51, Return: 55},
	}
	if got, at := longestStall(ops); got != 40 || at != 10 {
		t.Errorf("longestStall = %v at %v, want 40ns at 10ns", got, at)
	}
	if got, _ := longestStall(nil); got != 0 {
		t.Errorf("longestStall(nil) = %v, want 0", got)
	}
}
