//go:build e2e && faults

package faults

import (
	"testing"

	"github.com/anishathalye/porcupine"
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
		{"unknown cas either way", []porcupine.Operation{op(0, put("a"), 0, output{}, 1), op(1, cas("a", "b"), 2, output{Unknown: true}, unknownReturn), op(2, get, 4, output{Value: "a"}, 5), op(2, get, 6, output{Value: "b"}, 7)}, true},
	}
	model := registerModel.ToModel()
	for _, tt := range tests {
		if got := porcupine.CheckOperations(model, tt.ops); got != tt.want {
			t.Errorf("%s: linearizable = %v, want %v", tt.name, got, tt.want)
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
}
