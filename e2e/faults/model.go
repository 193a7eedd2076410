//go:build e2e && faults

package faults

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// opKind is what a client asked the cluster to do.
type opKind int

const (
	opGet opKind = iota
	opPut
	opCAS
	opDelete
)

// input is one request to a key. Values are unique per run, so a value
// names the write that produced it; "" means the key is absent.
type input struct {
	Kind   opKind
	Key    string
	Value  string // put's value, CAS's new value
	Expect string // CAS's expected current value ("" = absent)
}

// output is what the cluster answered. Unknown means the request failed
// in a way that leaves its effect undecided; NotSent that it failed before
// any request left the client, or was refused without effect (it took no
// effect: the history drops it).
type output struct {
	Unknown   bool
	NotSent   bool
	Value     string // get's value
	Succeeded bool   // CAS's outcome
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
	case opGet:
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

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var keys []string
	for _, op := range history {
		k := op.Input.(input).Key
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], op)
	}
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}
