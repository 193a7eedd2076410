//go:build e2e && faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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

// flaredbKinds are the faults of a FlareDB run: they hit the stores (kill
// -9 and SIGSTOP of a random store).
var flaredbKinds = []faultKind{killRandom, pauseRandom}

// TestFlareDBFaults runs -runs seeded runs of get/put/CAS traffic on a
// strong FlareDB namespace (three stores, one control-plane node) while
// stores are killed and paused, and prints a summary table.
func TestFlareDBFaults(t *testing.T) {
	if *runsFlag == 0 {
		t.Skip("randomized runs only with -runs N (make test-faults RUNS=N); TestFaultsCI is the bounded subset")
	}
	seed := firstSeed()
	var results []result
	for i := range *runsFlag {
		s := seed + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) {
			results = append(results, flaredbRun(t, s, *durationFlag))
		})
	}
	fmt.Print(summary("FlareDB strong namespace, 3 stores + 1 control-plane node, faults kill/pause of stores", results))
}

// flaredbRun is one FlareDB run with seed; failures are reported on t.
func flaredbRun(t *testing.T, seed uint64, d time.Duration) result {
	res := result{seed: seed}
	const stores = 3
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithTickMs(*tickFlag), framework.WithProcessGroups(),
		framework.WithStores(stores), framework.WithNamespaceModes(map[string]string{strongNS: "strong"}))
	nm := &nemesis{t: t, c: c, targets: c.Stores()}
	sched := schedule(seed, stores, d, flaredbKinds)
	report := func(format string, args ...any) {
		t.Errorf("seed %d (FlareDB, faults on stores): "+format+"\nfault schedule:\n%s", append(append([]any{seed}, args...), describeSchedule(sched))...)
	}
	endpoints := strings.Join(c.Endpoints(), ",")
	doers := make([]doer, clients)
	for i := range doers {
		cli, err := flaredb.New(endpoints)
		if err != nil {
			t.Fatalf("FlareDB client: %v", err)
		}
		t.Cleanup(func() { cli.Close() })
		doers[i] = flaredbDoer(cli)
	}
	h := newHistory()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		traffic(ctx, doers, flaredbKeys, seed, h)
	}()
	n, err := nm.run(ctx, h.start, sched)
	res.faults, res.byKind = n, nm.injected
	<-done
	if err != nil {
		res.harnessErr = true
		report("nemesis: %v", err)
		return res
	}
	final, err := restartAndRead(t, c, h, flaredbKeys, func() (doer, func(), error) {
		cli, err := flaredb.New(endpoints)
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
	check := checkHistory(t, &res, h, final, report)
	t.Logf("seed %d (FlareDB): %d operations (%d unknown), %d faults, linearizable=%v, lost=%d",
		seed, res.ops, res.unknown, res.faults, check == porcupine.Ok, res.lost)
	return res
}

// flaredbOpTimeout bounds each FlareDB request, retries included: longer
// than Chainfire's, as the client finds a region's new leader through PD
// after an election.
const flaredbOpTimeout = 5 * time.Second

// flaredbDoer sends requests to the strong namespace through cli: Get,
// Put, and CompareAndSwap (prevNotExist for an absent expected value).
// An error leaves the outcome unknown unless the client sent no request
// to any store (OpError.Attempts == 0).
func flaredbDoer(cli *flaredb.Client) doer {
	return func(ctx context.Context, in input) output {
		ctx, cancel := context.WithTimeout(ctx, flaredbOpTimeout)
		defer cancel()
		key := []byte(in.Key)
		failed := func(err error) output {
			var oe *flaredb.OpError
			if errors.As(err, &oe) && oe.Attempts == 0 {
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
		default:
			ok, _, _, err := cli.CompareAndSwap(ctx, strongNS, key, []byte(in.Expect), in.Expect == "", []byte(in.Value))
			if err != nil {
				return failed(err)
			}
			return output{Succeeded: ok}
		}
	}
}
