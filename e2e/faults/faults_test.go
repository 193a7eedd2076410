//go:build e2e && faults

package faults

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/e2e/framework"
)

var (
	runsFlag     = flag.Int("runs", 1, "number of randomized runs")
	seedFlag     = flag.Uint64("seed", 0, "seed of the first run (run i uses seed+i); 0 picks one from the clock")
	durationFlag = flag.Duration("duration", 20*time.Second, "traffic and faults per run")
	outFlag      = flag.String("out", "", "directory for porcupine visualizations of violations (default: a temporary directory that is kept)")
)

const (
	nodes   = 3
	clients = 4
)

var keys = []string{"k0", "k1", "k2"}

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m))
}

// result is what one run found.
type result struct {
	seed       uint64
	ops        int
	unknown    int
	faults     int
	violation  bool
	lost       int
	harnessErr bool
}

// TestChainfireFaults runs -runs seeded runs of traffic and faults against
// a 3-node Chainfire cluster and prints a summary table.
func TestChainfireFaults(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano() % 1_000_000_000)
	}
	var results []result
	for i := range *runsFlag {
		s := seed + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) {
			results = append(results, chainfireRun(t, s))
		})
	}
	fmt.Print(summary(results))
}

// chainfireRun is one run with seed; failures are reported on t.
func chainfireRun(t *testing.T, seed uint64) result {
	res := result{seed: seed}
	sched := schedule(seed, nodes, *durationFlag)
	report := func(format string, args ...any) {
		t.Errorf("seed %d: "+format+"\nfault schedule:\n%s", append(append([]any{seed}, args...), describeSchedule(sched))...)
	}
	c := framework.NewCluster(t, framework.WithNodes(nodes))
	clis := make([]*clientv3.Client, clients)
	for i := range clis {
		cli, err := c.NewClient(c.Endpoints()...)
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		t.Cleanup(func() { cli.Close() })
		clis[i] = cli
	}

	h := newHistory()
	ctx, cancel := context.WithTimeout(t.Context(), *durationFlag)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		traffic(ctx, clis, keys, seed, h)
	}()
	n, err := nemesis(ctx, c, h.start, sched)
	res.faults = n
	<-done
	if err != nil {
		res.harnessErr = true
		report("nemesis: %v", err)
		return res
	}

	final, err := restartAndRead(t, c, h)
	if err != nil {
		res.harnessErr = true
		report("after restarting every node: %v", err)
		return res
	}
	ops := h.operations()
	res.ops = len(ops)
	for _, op := range ops {
		if op.Return == unknownReturn {
			res.unknown++
		}
	}
	if lost := lostWrites(ops, final); len(lost) > 0 {
		res.lost = len(lost)
		report("%d acknowledged write(s) lost after every node restarted:\n  %s", len(lost), strings.Join(lost, "\n  "))
	}
	model := registerModel.ToModel()
	check, info := porcupine.CheckOperationsVerbose(model, ops, time.Minute)
	switch check {
	case porcupine.Illegal:
		res.violation = true
		report("history of %d operations is not linearizable; visualization: %s", len(ops), visualize(t, model, info, seed))
	case porcupine.Unknown:
		res.harnessErr = true
		report("porcupine could not decide linearizability of %d operations within its timeout", len(ops))
	}
	t.Logf("seed %d: %d operations (%d unknown), %d faults, linearizable=%v, lost=%d", seed, res.ops, res.unknown, res.faults, check == porcupine.Ok, res.lost)
	return res
}

// restartAndRead kills every node (SIGKILL), restarts them all, and reads
// every key through a fresh client, recording the reads into h. It returns
// key -> value.
func restartAndRead(t *testing.T, c *framework.Cluster, h *history) (map[string]string, error) {
	for _, n := range c.Nodes() {
		if n.Paused() {
			if err := n.Resume(); err != nil {
				return nil, err
			}
		}
		if n.Running() {
			if err := n.Kill(); err != nil {
				return nil, err
			}
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.RestartAll(ctx); err != nil {
		return nil, err
	}
	cli, err := c.NewClient(c.Endpoints()...)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	final := map[string]string{}
	for _, k := range keys {
		in := input{Kind: opGet, Key: k}
		call := h.now()
		out := do(ctx, cli, in)
		if out.Unknown {
			return nil, fmt.Errorf("final read of %s failed", k)
		}
		h.add(clients, in, call, out)
		final[k] = out.Value
	}
	return final, nil
}

// visualize writes porcupine's HTML visualization of a violation and
// returns its path.
func visualize(t *testing.T, model porcupine.Model, info porcupine.LinearizationInfo, seed uint64) string {
	dir := *outFlag
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "centra-faults-"); err != nil {
			return "not written: " + err.Error()
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "not written: " + err.Error()
	}
	path := filepath.Join(dir, fmt.Sprintf("chainfire-seed-%d.html", seed))
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return "not written: " + err.Error()
	}
	t.Logf("wrote %s", path)
	return path
}

// summary formats the runs' results as a table with a totals line.
func summary(results []result) string {
	var b strings.Builder
	var ops, unknown, faults, violations, lost, harness int
	fmt.Fprintf(&b, "\n%-12s %8s %8s %7s %10s %5s %8s\n", "seed", "ops", "unknown", "faults", "violation", "lost", "harness")
	for _, r := range results {
		fmt.Fprintf(&b, "%-12d %8d %8d %7d %10v %5d %8v\n", r.seed, r.ops, r.unknown, r.faults, r.violation, r.lost, r.harnessErr)
		ops += r.ops
		unknown += r.unknown
		faults += r.faults
		lost += r.lost
		if r.violation {
			violations++
		}
		if r.harnessErr {
			harness++
		}
	}
	fmt.Fprintf(&b, "runs %d, operations %d (%d unknown outcome), faults injected %d, linearizability violations %d, acknowledged writes lost %d, runs with harness errors %d\n",
		len(results), ops, unknown, faults, violations, lost, harness)
	return b.String()
}
