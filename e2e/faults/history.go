//go:build e2e && faults

package faults

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// unknownReturn is the return time of an operation whose outcome is
// unknown: it may take effect at any time after its call.
const unknownReturn = math.MaxInt64

// history records operations concurrently, timed on one monotonic clock.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func newHistory() *history { return &history{start: time.Now()} }

// now is the time since the history began, in nanoseconds.
func (h *history) now() int64 { return time.Since(h.start).Nanoseconds() }

// add records client's operation in, called at call, answered with out. An
// unknown read and a request never sent are dropped: they changed nothing
// and told nothing.
func (h *history) add(client int, in input, call int64, out output) {
	ret := h.now()
	if out.NotSent {
		return
	}
	if out.Unknown {
		if in.read() {
			return
		}
		ret = unknownReturn
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// writesByValue returns the operations that may have written a value
// (puts and CAS that did not fail), by value, which is unique per run.
func writesByValue(ops []porcupine.Operation) map[string]porcupine.Operation {
	out := map[string]porcupine.Operation{}
	for _, op := range ops {
		in, o := op.Input.(input), op.Output.(output)
		if in.Kind == opPut || in.Kind == opCAS && (o.Unknown || o.Succeeded) {
			out[in.Value] = op
		}
	}
	return out
}

// lostWrites checks the values read after every node restarted (final,
// key -> value) against the acknowledged writes in ops. An acknowledged
// write to a key is lost if the final value was written by an operation
// that returned before the acknowledged write was called (so the
// acknowledged write must have overwritten it), or if the key is absent
// and no delete of it could have come after the write (every delete of
// the key returned before the write was called). It returns the lost
// writes' descriptions.
func lostWrites(ops []porcupine.Operation, final map[string]string) []string {
	writes := writesByValue(ops)
	// lastDelete is the latest return of a delete per key (unknown
	// outcomes return at unknownReturn, after everything).
	lastDelete := map[string]int64{}
	for _, op := range ops {
		if in := op.Input.(input); in.Kind == opDelete {
			if r, ok := lastDelete[in.Key]; !ok || op.Return > r {
				lastDelete[in.Key] = op.Return
			}
		}
	}
	var lost []string
	for _, op := range ops {
		in, o := op.Input.(input), op.Output.(output)
		acked := !o.Unknown && (in.Kind == opPut || in.Kind == opCAS && o.Succeeded)
		if !acked {
			continue
		}
		v := final[in.Key]
		if v == "" {
			if r, ok := lastDelete[in.Key]; ok && r >= op.Call {
				continue
			}
		}
		w, ok := writes[v]
		if v == "" || !ok || w.Input.(input).Key != in.Key || w.Return < op.Call {
			lost = append(lost, describe(in, o)+" (final value "+quote(v)+")")
		}
	}
	return lost
}

func quote(s string) string { return `"` + s + `"` }

// longestStall is the longest time in ops (from the first call to the
// last answer) during which no operation was answered, the worst
// unavailability the clients saw, and when it began (since the history's
// start, as the fault schedule counts).
func longestStall(ops []porcupine.Operation) (stall, at time.Duration) {
	var answered []int64
	first := int64(math.MaxInt64)
	for _, op := range ops {
		first = min(first, op.Call)
		if op.Return != unknownReturn {
			answered = append(answered, op.Return)
		}
	}
	if len(answered) == 0 {
		return 0, 0
	}
	slices.Sort(answered)
	prev := first
	for _, r := range answered {
		if d := time.Duration(r - prev); d > stall {
			stall, at = d, time.Duration(prev)
		}
		prev = r
	}
	return stall, at
}
