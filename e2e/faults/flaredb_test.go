//go:build e2e && faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/anishathalye/porcupine"

	"github.com/centra-cloud/centra/e2e/framework"
	flaredb "github.com/centra-cloud/centra/flaredb/client"
)

// strongNS is the FlareDB namespace under test, strong in
// [namespace_modes]: its reads go to the region leader and must be
// linearizable.
const strongNS = "faults"

// flaredbKeys are the keys of a FlareDB run: more than Chainfire's, as a
// killed store leaves more requests of unknown outcome, which porcupine's
// search must place.
var flaredbKeys = makeKeys(8)

// flaredbStores is the stores of a FlareDB run: one more than the three
// replicas of a region, so that a replica can move.
const flaredbStores = 4

// TestFlareDBFaults runs -runs seeded runs of get/put/CAS traffic on a
// strong FlareDB namespace and puts on an eventual one (four stores, one
// control-plane node) while stores are killed, paused and partitioned and
// PD's admin operators split regions and move replicas and leaders, and
// prints a summary table.
func TestFlareDBFaults(t *testing.T) {
	runs := *fdbRunsFlag
	if runs < 0 {
		runs = *runsFlag
	}
	if runs == 0 {
		t.Skip("randomized runs only with -flaredb-runs N or -runs N (make test-faults RUNS=N); TestFaultsCI is the bounded subset")
	}
	kinds, err := parseKinds(*faultsFlag, flaredbKinds)
	if err != nil {
		t.Skipf("-faults: %v", err)
	}
	results := runBatch(t, "FlareDB", runs, func(t *testing.T, seed uint64) result {
		return flaredbRun(t, runConfig{seed: seed, nodes: 1, stores: flaredbStores, duration: *durationFlag, kinds: kinds})
	})
	fmt.Print(summary(fmt.Sprintf("FlareDB strong and eventual namespaces, %d stores + 1 control-plane node, faults %v", flaredbStores, kinds), results))
}

// flaredbRun is one FlareDB run of cfg (cfg.stores set); failures are
// reported on t.
func flaredbRun(t *testing.T, cfg runConfig) result {
	seed := cfg.seed
	res := result{seed: seed}
	c, nm, kinds := setup(t, cfg, &res)
	cp := c.Node(0)
	sched := schedule(seed, cfg.stores, cfg.duration, kinds)
	report := func(format string, args ...any) {
		t.Errorf("seed %d (FlareDB; \"node i\" is store i): "+format+"\nfault schedule:\n%s", append(append([]any{seed}, args...), describeSchedule(sched))...)
	}
	t.Logf("seed %d fault schedule (\"node i\" is store i):\n%s", seed, describeSchedule(sched))
	if err := disableBalance(t.Context(), cp); err != nil {
		t.Fatalf("PD schedulers: %v", err)
	}
	newClient := func() *flaredb.Client {
		cli, err := newFlareDB(c)
		if err != nil {
			t.Fatalf("FlareDB client: %v", err)
		}
		t.Cleanup(func() { cli.Close() })
		return cli
	}
	doers := make([]doer, clients)
	for i := range doers {
		doers[i] = flaredbDoer(newClient())
	}
	if took, err := warmUp(t.Context(), doers, flaredbKeys[0]); err != nil {
		t.Fatalf("clients before traffic: %v", err)
	} else {
		t.Logf("every client read once %v after the cluster started serving", took.Round(time.Millisecond))
	}
	h := newHistory()
	ew := &eventualWriter{writes: map[string][]evWrite{}}
	ctx, cancel := context.WithTimeout(t.Context(), cfg.duration)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { traffic(ctx, doers, flaredbKeys, true, seed, h) })
	ecli := newClient()
	for _, k := range eventualKeys {
		wg.Go(func() { ew.run(ctx, ecli, k) })
	}
	n, err := nm.run(ctx, h.start, sched)
	res.faults, res.byKind, res.nothingToSplit, res.regionElections = n, nm.injected, nm.nothingToSplit, nm.regionElections
	wg.Wait()
	var stallAt time.Duration
	res.stall, stallAt = longestStall(h.operations())
	if err != nil {
		res.harnessErr = true
		report("nemesis: %v", err)
		return res
	}
	took, problems := checkConvergence(t.Context(), cp, c.Stores(), ew)
	res.evWrites, res.evViolations = ew.acked, len(problems)
	res.converged = append(res.converged, took)
	if len(problems) > 0 {
		report("eventual namespace %s (%d acknowledged writes):\n  %s", eventualNS, ew.acked, strings.Join(problems, "\n  "))
	}
	final, err := restartAndRead(t, c, h, flaredbKeys, func() (doer, func(), error) {
		cli, err := newFlareDB(c)
		if err != nil {
			return nil, nil, err
		}
		return flaredbDoer(cli), func() { cli.Close() }, nil
	})
	if err != nil {
		res.harnessErr = true
		report("after restarting every process: %v", err)
		return res
	}
	// Every acknowledged eventual write survives the kill -9 of every
	// process too: the replicas converge again, to the same values.
	if _, problems := checkConvergence(t.Context(), cp, c.Stores(), ew); len(problems) > 0 {
		res.evViolations += len(problems)
		report("eventual namespace %s after restarting every process:\n  %s", eventualNS, strings.Join(problems, "\n  "))
	}
	check := checkHistory(t, &res, h, final, report)
	t.Logf("seed %d (FlareDB): %d operations (%d unknown), %d faults, linearizable=%v, lost=%d, longest stall %v from t=%v; eventual: %d acknowledged writes, converged in %v, %d problems",
		seed, res.ops, res.unknown, res.faults, check == porcupine.Ok, res.lost, res.stall.Round(time.Millisecond), stallAt.Round(time.Millisecond), ew.acked, took.Round(time.Millisecond), len(problems))
	return res
}

// flaredbOpTimeout bounds each FlareDB request, retries included: longer
// than Chainfire's, as the client finds a region's new leader through PD
// after an election.
const flaredbOpTimeout = 5 * time.Second

// flaredbDoer sends requests to the strong namespace through cli: Get,
// Put, Delete, CompareAndSwap (prevNotExist for an absent expected value)
// and Scan.
// An error leaves the outcome unknown unless the client sent no request
// to any store (OpError.Attempts == 0) or its only request was refused for
// short disk space (ResourceExhausted: the leader refuses before
// proposing, for its own disk or a replica's; after an earlier attempt
// of unknown outcome, a put's retry refused so proves nothing).
// warmUp has every client read key until one read is answered, before
// the history starts: a fresh namespace's region elects its first leader
// one randomized election timeout after it starts (~0.67 s measured;
// dragonboat has no call to campaign at once, as TiKV's bootstrap and
// split-born peers do), and that wait counted as the run's longest stall
// (16 of batch 5's 50 FlareDB runs), or as part of the first fault's.
func warmUp(ctx context.Context, doers []doer, key string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	began := time.Now()
	errs := make([]error, len(doers))
	var wg sync.WaitGroup
	for i, do := range doers {
		wg.Go(func() {
			errs[i] = framework.WaitForCtx(ctx, func() error {
				if out := do(ctx, input{Kind: opGet, Key: key}); out.Unknown || out.NotSent {
					return fmt.Errorf("client %d: a read of %q not answered yet", i, key)
				}
				return nil
			})
		})
	}
	wg.Wait()
	return time.Since(began), errors.Join(errs...)
}

func flaredbDoer(cli *flaredb.Client) doer {
	return func(ctx context.Context, in input) output {
		ctx, cancel := context.WithTimeout(ctx, flaredbOpTimeout)
		defer cancel()
		key := []byte(in.Key)
		failed := func(err error) output {
			var oe *flaredb.OpError
			if errors.As(err, &oe) && (oe.Attempts == 0 || oe.Attempts == 1 && connect.CodeOf(err) == connect.CodeResourceExhausted) {
				return output{NotSent: true}
			}
			return output{Unknown: true}
		}
		switch in.Kind {
		case opGet:
			v, found, err := cli.Get(ctx, strongNS, key)
			if err != nil {
				return failed(err)
			}
			if !found {
				return output{}
			}
			return output{Value: string(v)}
		case opPut:
			if err := cli.Put(ctx, strongNS, key, []byte(in.Value)); err != nil {
				return failed(err)
			}
			return output{}
		case opDelete:
			if err := cli.Delete(ctx, strongNS, key); err != nil {
				return failed(err)
			}
			return output{}
		case opScan:
			pairs, err := cli.Scan(ctx, strongNS, []byte(in.Start), []byte(in.End), flaredb.ScanOptions{Limit: in.Limit, Reverse: in.Reverse})
			if err != nil {
				return failed(err)
			}
			out := output{Pairs: make([]pair, len(pairs))}
			for i, p := range pairs {
				out.Pairs[i] = pair{Key: string(p.Key), Value: string(p.Value)}
			}
			return out
		default:
			ok, _, _, err := cli.CompareAndSwap(ctx, strongNS, key, []byte(in.Expect), in.Expect == "", []byte(in.Value))
			if err != nil {
				return failed(err)
			}
			return output{Succeeded: ok}
		}
	}
}

// TestFlareDBFollowerDiskFull fills the data filesystem of a store that
// holds a follower replica (three stores on tmpfs, min_free_bytes 64 MiB):
// the store reports disk_low to PD, the region's leader (on another store,
// with room) refuses puts with ResourceExhausted naming the full store,
// reads and deletes still work, the full store keeps running, and puts are
// accepted again once the ballast is gone.
func TestFlareDBFollowerDiskFull(t *testing.T) {
	var res result
	c, nm, _ := setup(t, runConfig{nodes: 1, stores: 3, kinds: []faultKind{diskFull}, strict: true}, &res)
	cp := c.Node(0)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cli, err := newFlareDB(c)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if err := waitPut(ctx, cli); err != nil {
		t.Fatal(err)
	}
	rs, err := ledRegions(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	var follower *framework.Node
	for _, s := range c.Stores() {
		if s.StoreID() != rs[0].Leader.StoreID {
			follower = s
			break
		}
	}
	t.Logf("filling %s, a follower of %v", follower, rs[0])
	ballast := filepath.Join(nm.disks.mount(c, follower), "ballast")
	if _, err := fillTo(ballast, fillSlack); err != nil {
		t.Fatal(err)
	}
	nm.disks.filled[follower] = true
	if err := waitDiskLow(ctx, cp, follower.StoreID(), true); err != nil {
		t.Fatal(err)
	}
	// The leader learns it from PD's answer to its next region heartbeat
	// (every second here).
	want := fmt.Sprintf("stores [%d]", follower.StoreID())
	last := []byte("x") // waitPut's
	i := 0
	err = framework.WaitForCtx(ctx, func() error {
		pctx, cancel := context.WithTimeout(ctx, flaredbOpTimeout)
		v := fmt.Appendf(nil, "y%d", i)
		i++
		err := cli.Put(pctx, strongNS, []byte(probeKey), v)
		cancel()
		if connect.CodeOf(err) == connect.CodeResourceExhausted && strings.Contains(err.Error(), want) {
			t.Logf("put refused: %v", err)
			return nil
		}
		if err != nil {
			t.Fatalf("put while %s is short of disk space: %v, want success or ResourceExhausted naming %s", follower, err, want)
		}
		last = v
		return fmt.Errorf("puts still accepted while %s is short of disk space", follower)
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, found, err := cli.Get(ctx, strongNS, []byte(probeKey)); err != nil || !found || string(v) != string(last) {
		t.Fatalf("get while a follower is short of disk space: %q %v %v, want the last acknowledged value %q", v, found, err, last)
	}
	if err := cli.Delete(ctx, strongNS, []byte(probeKey)); err != nil {
		t.Fatalf("delete while a follower is short of disk space: %v", err)
	}
	if err := nm.disks.exited(c); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if err := nm.disks.storeDiskLow(c, follower)(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := nm.disks.exited(c); err != nil {
		t.Fatal(err)
	}
}
