//go:build e2e && faults

package faults

import (
	"fmt"
	"slices"

	"github.com/anishathalye/porcupine"
)

// opKind is what a client asked the cluster to do.
type opKind int

const (
	opGet opKind = iota
	opPut
	opCAS
	opDelete
	// opScan reads a range of keys (FlareDB's Scan). It is checked as a
	// read of every key it covered, each at some time between the scan's
	// call and return (perKey), the guarantee flaredb/client's doc.go
	// states for a strong namespace; its order, bounds and limit are
	// checked apart (scanProblems).
	opScan
)

// input is one request to a key. Values are unique per run, so a value
// names the write that produced it; "" means the key is absent.
type input struct {
	Kind   opKind
	Key    string // the key; for a scan, the key perKey made it a read of
	Value  string // put's value, CAS's new value
	Expect string // CAS's expected current value ("" = absent)
	// A scan's range: Start <= key < End ("" End: to the namespace's
	// end), at most Limit pairs (0: no limit), in descending order if
	// Reverse. Keys are the run's keys inside the range, ascending: the
	// namespace holds no others.
	Start, End string
	Limit      int
	Reverse    bool
	Keys       []string
}

// read reports whether in changes nothing.
func (in input) read() bool { return in.Kind == opGet || in.Kind == opScan }

// pair is one key-value pair a scan returned.
type pair struct{ Key, Value string }

// output is what the cluster answered. Unknown means the request failed
// in a way that leaves its effect undecided; NotSent that it failed before
// any request left the client, or was refused without effect (it took no
// effect: the history drops it).
type output struct {
	Unknown   bool
	NotSent   bool
	Value     string // get's value
	Succeeded bool   // CAS's outcome
	Pairs     []pair // scan's pairs, in the order returned
}

// registerModel is a register per key (a history is partitioned by key):
// the state is the key's current value.
var registerModel = porcupine.NondeterministicModel{
	Partition: partitionByKey,
	Init:      func() []any { return []any{""} },
	Step: func(state, in, out any) []any {
		return step(state.(string), in.(input), out.(output))
	},
	DescribeOperation: func(in, out any) string {
		return describe(in.(input), out.(output))
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
}

// step returns the register's possible states after in answered with out
// from state cur (none if that answer is impossible).
func step(cur string, in input, out output) []any {
	switch in.Kind {
	case opGet, opScan:
		if out.Unknown || out.Value == cur {
			return []any{cur}
		}
		return nil
	case opPut:
		return []any{in.Value}
	case opDelete:
		return []any{""}
	case opCAS:
		match := cur == in.Expect
		switch {
		case out.Unknown && match:
			return []any{in.Value, cur}
		case out.Unknown, !out.Succeeded && !match:
			return []any{cur}
		case out.Succeeded && match:
			return []any{in.Value}
		}
		return nil
	}
	return nil
}

func describe(in input, out output) string {
	res := "?"
	switch in.Kind {
	case opGet:
		if !out.Unknown {
			res = fmt.Sprintf("%q", out.Value)
		}
		return fmt.Sprintf("get(%s) -> %s", in.Key, res)
	case opScan:
		if !out.Unknown {
			res = fmt.Sprintf("%q", out.Value)
		}
		return fmt.Sprintf("%s reads %s -> %s", describeScan(in), in.Key, res)
	case opPut:
		if !out.Unknown {
			res = "ok"
		}
		return fmt.Sprintf("put(%s, %q) -> %s", in.Key, in.Value, res)
	case opDelete:
		if !out.Unknown {
			res = "ok"
		}
		return fmt.Sprintf("delete(%s) -> %s", in.Key, res)
	default:
		if !out.Unknown {
			res = fmt.Sprint(out.Succeeded)
		}
		return fmt.Sprintf("cas(%s, %q -> %q) -> %s", in.Key, in.Expect, in.Value, res)
	}
}

func describeScan(in input) string {
	end := in.End
	if end == "" {
		end = "end"
	}
	return fmt.Sprintf("scan[%s, %s) limit %d reverse %v", in.Start, end, in.Limit, in.Reverse)
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var keys []string
	for _, whole := range history {
		for _, op := range perKey(whole) {
			k := op.Input.(input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
	}
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

// perKey splits a scan into reads of the keys it covered, each with the
// scan's call and return times: a key it returned was read with that
// value, a key of its range it did not return was read absent. With its
// limit reached, it covered only the keys up to the last one returned (down
// to it, in reverse). A failed scan reads nothing. Other operations are
// returned as they are.
//
// This is what a FlareDB strong scan guarantees: each region's part is
// read at its own time, and a part resumed after a failure at yet another,
// so the scan is no snapshot, but every key is read linearizably at some
// time inside the scan's call-return window.
func perKey(op porcupine.Operation) []porcupine.Operation {
	in, out := op.Input.(input), op.Output.(output)
	if in.Kind != opScan {
		return []porcupine.Operation{op}
	}
	if out.Unknown {
		return nil // it told nothing (history.add drops it anyway)
	}
	got := map[string]string{}
	for _, p := range out.Pairs {
		got[p.Key] = p.Value
	}
	covered := in.Keys
	if n := len(out.Pairs); in.Limit > 0 && n >= in.Limit {
		last := out.Pairs[n-1].Key
		covered = slices.DeleteFunc(slices.Clone(in.Keys), func(k string) bool { return k > last != in.Reverse && k != last })
	}
	subs := make([]porcupine.Operation, 0, len(covered))
	for _, k := range covered {
		sub := op
		read := in
		read.Key, read.Keys = k, nil
		sub.Input, sub.Output = read, output{Value: got[k]}
		subs = append(subs, sub)
	}
	return subs
}

// scanProblems checks what a scan returned against its request: keys
// inside the range, each at most once, in ascending (descending if
// Reverse) order, no more than the limit, and none but the run's keys.
func scanProblems(in input, out output) []string {
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, describeScan(in)+": "+fmt.Sprintf(format, args...))
	}
	if in.Limit > 0 && len(out.Pairs) > in.Limit {
		bad("%d pairs returned, over the limit", len(out.Pairs))
	}
	for i, p := range out.Pairs {
		if p.Key < in.Start || in.End != "" && p.Key >= in.End {
			bad("key %s outside the range", p.Key)
		} else if !slices.Contains(in.Keys, p.Key) {
			bad("key %s was never written", p.Key)
		}
		if i == 0 {
			continue
		}
		if prev := out.Pairs[i-1].Key; prev == p.Key || prev < p.Key == in.Reverse {
			bad("key %s after %s: out of order or repeated", p.Key, prev)
		}
	}
	return problems
}
