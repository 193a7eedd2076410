//go:build e2e && faults

package faults

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/config"
	"github.com/centra-cloud/centra/e2e/framework"
)

var (
	runsFlag     = flag.Int("runs", 0, "number of randomized runs of TestChainfireFaults (0 skips it; make test-faults passes its share of RUNS)")
	fdbRunsFlag  = flag.Int("flaredb-runs", -1, "number of randomized runs of TestFlareDBFaults (0 skips it; default: -runs)")
	seedFlag     = flag.Uint64("seed", 0, "seed of the first run (run i uses seed+i); 0 picks one from the clock")
	durationFlag = flag.Duration("duration", 20*time.Second, "traffic and faults per run")
	outFlag      = flag.String("out", "", "directory for porcupine visualizations of violations (default: a temporary directory that is kept)")
	faultsFlag   = flag.String("faults", "all", "comma-separated fault kinds to draw from (all, "+strings.Join(faultNames[:], ", ")+")")
	nodesFlag    = flag.Int("nodes", 3, "control-plane nodes (3 or 5)")
	tlsFlag      = flag.Bool("tls", false, "run the clusters with mutual TLS on every listener (raft, API, stores), as the runbooks deploy them")
	tickFlag     = flag.Uint64("tick-ms", config.Default().Raft.TickIntervalMs, "raft.tick_interval_ms (default: centra's default)")
	electionFlag = flag.Uint64("election-ticks", config.Default().Raft.ElectionTicks, "raft.election_ticks (default: centra's default)")
)

const clients = 4

// keyPrefix holds the keys of the traffic, which the watcher watches.
const keyPrefix = "f/"

// makeKeys returns n keys under keyPrefix. Few keys mean much contention;
// porcupine's search grows with the writes of unknown outcome per key.
func makeKeys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%sk%d", keyPrefix, i)
	}
	return out
}

// chainfireKeys are the keys of a Chainfire run.
var chainfireKeys = makeKeys(3)

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
	// watchEvents the watcher received; watchViolations of its
	// guarantees.
	watchEvents, watchViolations int
	// leaseChecks that could have caught a lease expiring early;
	// leaseViolations where it did.
	leaseChecks, leaseViolations int
	// elections and agreed are the times to a new leader after each
	// leader kill, by its log and by every node's agreement (nemesis).
	elections, agreed []time.Duration
	// detections are the times from each leader kill to the first
	// survivor's election timeout (nemesis).
	detections []time.Duration
	// regionElections are the times after each kill of the store leading
	// the most regions until all of them had a new leader (FlareDB).
	regionElections []time.Duration
	// k8s is the Kubernetes-like and lease-revoke traffic's checker.
	k8s *k8sChecker
	// byKind counts the faults injected by kind.
	byKind [numFaultKinds]int
	// skipped names the faults this machine could not inject, and why.
	skipped string
	// evWrites acknowledged to FlareDB's eventual namespace; evViolations
	// of its convergence check; converged the time the replicas took to
	// agree after the faults stopped.
	evWrites, evViolations int
	converged              []time.Duration
	// stall is the longest time no operation of the traffic was answered
	// (FlareDB runs).
	stall time.Duration
	// nothingToSplit counts split-region faults that found no region to
	// split.
	nothingToSplit int
	// scans answered (FlareDB runs; in ops too), scanViolations of their
	// order, bounds or limit.
	scans, scanViolations int
}

// TestChainfireFaults runs -runs seeded runs of traffic and -faults
// against a -nodes Chainfire cluster and prints a summary table.
func TestChainfireFaults(t *testing.T) {
	if *runsFlag == 0 {
		t.Skip("randomized runs only with -runs N (make test-faults RUNS=N); TestFaultsCI is the bounded subset")
	}
	kinds, err := parseKinds(*faultsFlag, chainfireKinds)
	if err != nil {
		t.Fatalf("-faults: %v", err)
	}
	results := runBatch(t, "Chainfire", *runsFlag, func(t *testing.T, seed uint64) result {
		return chainfireRun(t, runConfig{seed: seed, nodes: *nodesFlag, duration: *durationFlag, kinds: kinds})
	})
	fmt.Print(summary("Chainfire, "+fmt.Sprint(*nodesFlag)+" nodes, faults "+*faultsFlag, results))
}

// runBatch runs n seeded runs of one store as subtests, from firstSeed on,
// and reports each run's outcome on stderr as it ends, so that a batch of
// an hour shows its progress.
func runBatch(t *testing.T, store string, n int, run func(*testing.T, uint64) result) []result {
	seed := firstSeed()
	results := make([]result, 0, n)
	begin := time.Now()
	for i := range n {
		s := seed + uint64(i)
		start := time.Now()
		r := result{seed: s, harnessErr: true} // unless the run returns
		ok := t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) {
			r = run(t, s)
		})
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "%s run %d/%d seed %d: %s in %v (ops %d, faults %d, violation %t, lost %d, harness error %t); batch %v\n",
			store, i+1, n, s, map[bool]string{true: "passed", false: "FAILED"}[ok], time.Since(start).Round(time.Second),
			r.ops, r.faults, r.violation, r.lost, r.harnessErr, time.Since(begin).Round(time.Second))
	}
	return results
}

// ciDuration is the traffic of each TestFaultsCI scenario.
const ciDuration = 15 * time.Second

// TestFaultsCI is the bounded subset make test runs (90 s of traffic in
// all): a 3-node Chainfire cluster through kills and pauses, through
// partitions, through leader transfers and member churn, and through full
// disks, and FlareDB's strong and eventual namespaces through store kills,
// pauses and PD's admin operators, and through store partitions, each
// checked like a randomized run. A scenario whose faults this machine
// cannot inject (no root for network namespaces or tmpfs) is skipped with
// the reason.
func TestFaultsCI(t *testing.T) {
	// The partition and membership scenarios run with mutual TLS, the
	// others in plaintext.
	scenarios := []struct {
		name  string
		kinds []faultKind
		tls   bool
	}{
		{"kill-pause", []faultKind{killLeader, killRandom, pauseLeader, pauseRandom}, false},
		{"partition", []faultKind{isolateLeader, splitMinority, oneWay}, true},
		{"membership", []faultKind{transferLeader, churnFollower}, true},
		{"disk-full", []faultKind{diskFull}, false},
	}
	seed := firstSeed()
	var results []result
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			cfg := runConfig{seed: seed + uint64(i), nodes: 3, duration: ciDuration, kinds: sc.kinds, strict: true, tls: sc.tls}
			results = append(results, chainfireRun(t, cfg))
		})
	}
	fdb := []struct {
		name  string
		kinds []faultKind
		tls   bool
	}{
		{"flaredb-kill-pause-operators", []faultKind{killRandom, pauseRandom, splitRegion, moveReplica, transferRegionLead}, false},
		{"flaredb-partition", []faultKind{isolateLeader, splitMinority, oneWay, splitIsolated, moveIsolated}, true},
	}
	for i, sc := range fdb {
		t.Run(sc.name, func(t *testing.T) {
			cfg := runConfig{seed: seed + uint64(len(scenarios)+i), nodes: 1, stores: flaredbStores, duration: ciDuration, kinds: sc.kinds, strict: true, tls: sc.tls}
			results = append(results, flaredbRun(t, cfg))
		})
	}
	t.Log(summary("TestFaultsCI (the last two runs are FlareDB's)", results))
}

// firstSeed is -seed, or one from the clock.
func firstSeed() uint64 {
	if *seedFlag != 0 {
		return *seedFlag
	}
	return uint64(time.Now().UnixNano() % 1_000_000_000)
}

// runConfig is what one run does.
type runConfig struct {
	seed     uint64
	nodes    int
	duration time.Duration
	kinds    []faultKind
	// strict fails the run when a fault of kinds cannot be injected on
	// this machine (instead of dropping it with a note in the summary).
	strict bool
	// stores, when not 0, makes a FlareDB run: stores with a strong and
	// an eventual namespace, the faults' targets.
	stores int
	// tls runs the cluster with mutual TLS on every listener (as -tls
	// does for every run).
	tls bool
}

// setup starts the cluster of cfg with what its faults need: a network
// namespace per node for partitions, a tmpfs per node for disk-full. A
// fault this machine cannot inject is dropped from res's kinds and noted
// in res.skipped (or skips the test when cfg.strict).
func setup(t *testing.T, cfg runConfig, res *result) (*framework.Cluster, *nemesis, []faultKind) {
	opts := []framework.Option{framework.WithNodes(cfg.nodes), framework.WithTickMs(*tickFlag), framework.WithElectionTicks(*electionFlag), framework.WithProcessGroups()}
	if cfg.tls || *tlsFlag {
		opts = append(opts, framework.WithTLS())
	}
	nm := &nemesis{t: t}
	var kinds, dropped []faultKind
	var reasons []string
	if cfg.stores > 0 {
		// Split checks and region heartbeats every second (default 10 s):
		// PD learns the regions' key counts, which split-region needs, and
		// their leaders, which isolate-leader aims at, within a run.
		opts = append(opts, framework.WithStores(cfg.stores),
			framework.WithNamespaceModes(map[string]string{strongNS: "strong", eventualNS: "eventual"}),
			framework.WithStoreArgs("--region-split-check-interval-ms", "1000", "--region-heartbeat-interval-ms", "1000"))
	}
	if slices.ContainsFunc(cfg.kinds, faultKind.needsNetwork) {
		nw, err := newNetwork(t, cfg.nodes+cfg.stores)
		if err != nil {
			reasons = append(reasons, "partitions: "+err.Error())
		} else {
			nm.net = nw
			opts = append(opts, framework.WithNetns(func(i int) (string, string) { return nw.ns(i), nw.host(i) }))
		}
	}
	if slices.Contains(cfg.kinds, diskFull) {
		d, err := newDisks(t, cfg.nodes, cfg.stores)
		if err != nil {
			reasons = append(reasons, "disk-full: "+err.Error())
		} else {
			nm.disks = d
			opts = append(opts, framework.WithDataDirs(d.dataDir), framework.WithMinFreeBytes(minFree),
				framework.WithStoreArgs("--storage-min-free-bytes", fmt.Sprint(minFree)))
		}
	}
	for _, k := range cfg.kinds {
		if k.needsNetwork() && nm.net == nil || k == diskFull && nm.disks == nil {
			dropped = append(dropped, k)
			continue
		}
		kinds = append(kinds, k)
	}
	if len(reasons) > 0 {
		res.skipped = strings.Join(reasons, "; ")
		if cfg.strict {
			t.Skipf("SKIP: this machine cannot inject %v: %s", dropped, res.skipped)
		}
		t.Logf("NOT INJECTED on this machine: %v: %s", dropped, res.skipped)
	}
	if len(kinds) == 0 {
		t.Skipf("SKIP: no fault of %v can be injected here: %s", cfg.kinds, res.skipped)
	}
	nm.c = framework.NewCluster(t, opts...)
	if ca := nm.c.CAFile(); ca != "" {
		t.Logf("mutual TLS on every listener, certificates of CA %s", ca)
	}
	if cfg.stores > 0 {
		nm.targets = nm.c.Stores()
		nm.leader = func(ctx context.Context) (int, error) { return leaderStore(ctx, nm.c.Node(0), nm.targets) }
	}
	return nm.c, nm, kinds
}

// chainfireRun is one run of cfg; failures are reported on t.
func chainfireRun(t *testing.T, cfg runConfig) result {
	seed := cfg.seed
	res := result{seed: seed}
	c, nm, kinds := setup(t, cfg, &res)
	sched := schedule(seed, cfg.nodes, cfg.duration, kinds)
	report := func(format string, args ...any) {
		t.Errorf("seed %d: "+format+"\nfault schedule:\n%s", append(append([]any{seed}, args...), describeSchedule(sched))...)
	}
	var all, one [][]string
	for range clients {
		all = append(all, c.Endpoints())
	}
	for _, ep := range c.Endpoints() {
		one = append(one, []string{ep})
	}
	clis, wclis := newClients(t, c, all), newClients(t, c, one)
	start, err := clis[0].Get(t.Context(), keyPrefix)
	if err != nil {
		t.Fatalf("read the start revision: %v", err)
	}
	w := &watcher{prefix: keyPrefix, from: start.Header.Revision + 1}
	lc := &leaseChecker{key: "lease/k"}

	h := newHistory()
	ctx, cancel := context.WithTimeout(t.Context(), cfg.duration)
	defer cancel()
	wctx, wstop := context.WithCancel(t.Context())
	wdone := make(chan struct{})
	defer func() { wstop(); <-wdone }()
	go func() {
		defer close(wdone)
		w.run(wctx, wclis)
	}()
	var wg sync.WaitGroup
	doers := make([]doer, len(clis))
	for i, cli := range clis {
		doers[i] = etcdDoer(cli)
	}
	wg.Go(func() { traffic(ctx, doers, chainfireKeys, false, seed, h) })
	wg.Go(func() { lc.run(ctx, clis[0]) })
	k8s := &k8sChecker{}
	res.k8s = k8s
	for i := range k8sWriters {
		wg.Go(func() { writer(ctx, clis[i%len(clis)], clients+1+i, seed, h) })
	}
	wg.Go(func() { k8s.informer(ctx, clis[1%len(clis)], clients+1+k8sWriters, h) })
	wg.Go(func() { k8s.revoker(ctx, clis[2%len(clis)]) })
	n, err := nm.run(ctx, h.start, sched)
	res.faults, res.elections, res.agreed, res.detections, res.byKind = n, nm.elections, nm.agreed, nm.detections, nm.injected
	wg.Wait()
	if err == nil {
		err = nm.disks.exited(c)
	}
	if err != nil {
		res.harnessErr = true
		report("nemesis: %v", err)
		return res
	}
	res.leaseChecks, res.leaseViolations = lc.checks, len(lc.problems)
	if len(lc.problems) > 0 {
		report("lease expiry deleted a key early (%d leases, %d checks):\n  %s", lc.leases, lc.checks, strings.Join(lc.problems, "\n  "))
	}
	cctx, ccancel := context.WithTimeout(t.Context(), time.Minute)
	defer ccancel()
	problems, err := w.check(cctx, clis[0], wstop, wdone)
	if err != nil {
		res.harnessErr = true
		report("watch check: %v", err)
		return res
	}
	res.watchEvents, res.watchViolations = len(w.events), len(problems)
	if len(problems) > 0 {
		report("watch guarantees violated (%d events, %d resumes):\n  %s", len(w.events), w.resumes, strings.Join(problems, "\n  "))
	}

	if len(k8s.problems) > 0 {
		report("Kubernetes-like traffic (list/watch, lease revokes) violated a check:\n  %s", strings.Join(k8s.problems, "\n  "))
	}
	final, err := restartAndRead(t, c, h, append(slices.Clone(chainfireKeys), k8sObjects...), func() (doer, func(), error) {
		cli, err := c.NewClient(c.Endpoints()...)
		if err != nil {
			return nil, nil, err
		}
		return etcdDoer(cli), func() { cli.Close() }, nil
	})
	if err != nil {
		res.harnessErr = true
		report("after restarting every node: %v", err)
		return res
	}
	check := checkHistory(t, &res, h, final, report)
	t.Logf("seed %d: %d operations (%d unknown), %d faults, linearizable=%v, lost=%d, %d watch events (%d resumes, %d violations), %d lease checks (%d violations)",
		seed, res.ops, res.unknown, res.faults, check == porcupine.Ok, res.lost, res.watchEvents, w.resumes, res.watchViolations, res.leaseChecks, res.leaseViolations)
	return res
}

// checkHistory checks h with porcupine against the register model and the
// final values (read after every process restarted) for lost
// acknowledged writes, filling res and reporting what it finds.
func checkHistory(t *testing.T, res *result, h *history, final map[string]string, report func(string, ...any)) porcupine.CheckResult {
	ops := h.operations()
	res.ops = len(ops)
	var badScans []string
	for _, op := range ops {
		if op.Return == unknownReturn {
			res.unknown++
		}
		if in := op.Input.(input); in.Kind == opScan {
			res.scans++
			badScans = append(badScans, scanProblems(in, op.Output.(output))...)
		}
	}
	if len(badScans) > 0 {
		res.scanViolations = len(badScans)
		report("%d scan(s) returned wrong keys:\n  %s", len(badScans), strings.Join(badScans, "\n  "))
	}
	if lost := lostWrites(ops, final); len(lost) > 0 {
		res.lost = len(lost)
		report("%d acknowledged write(s) lost after every node restarted:\n  %s", len(lost), strings.Join(lost, "\n  "))
	}
	model := registerModel.ToModel()
	check, info := porcupine.CheckOperationsVerbose(model, ops, 3*time.Minute)
	switch check {
	case porcupine.Illegal:
		res.violation = true
		report("history of %d operations is not linearizable; visualization: %s", len(ops), visualize(t, model, info, res.seed))
	case porcupine.Unknown:
		res.harnessErr = true
		report("porcupine could not decide linearizability of %d operations within its timeout", len(ops))
	}
	return check
}

// newClients returns a client per endpoint list, closed when the test
// ends.
func newClients(t *testing.T, c *framework.Cluster, endpoints [][]string) []*clientv3.Client {
	out := make([]*clientv3.Client, len(endpoints))
	for i, eps := range endpoints {
		cli, err := c.NewClient(eps...)
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		t.Cleanup(func() { cli.Close() })
		out[i] = cli
	}
	return out
}

// restartAndRead kills every process of c (SIGKILL), restarts them all,
// and reads each of keys through a fresh client (newDoer), recording the
// reads into h. It returns key -> value.
func restartAndRead(t *testing.T, c *framework.Cluster, h *history, keys []string, newDoer func() (doer, func(), error)) (map[string]string, error) {
	all := append(slices.Clone(c.Nodes()), c.Stores()...)
	for _, n := range all {
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
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := c.RestartAll(ctx); err != nil {
		return nil, err
	}
	for _, s := range c.Stores() {
		if err := s.Restart(); err != nil {
			return nil, err
		}
	}
	for _, s := range c.Stores() {
		if err := s.WaitReady(ctx); err != nil {
			return nil, err
		}
	}
	do, closeDoer, err := newDoer()
	if err != nil {
		return nil, err
	}
	defer closeDoer()
	final := map[string]string{}
	for _, k := range keys {
		in := input{Kind: opGet, Key: k}
		err := framework.WaitForCtx(ctx, func() error {
			call := h.now()
			out := do(ctx, in)
			h.add(clients, in, call, out)
			if out.Unknown {
				return fmt.Errorf("final read of %s failed", k)
			}
			final[k] = out.Value
			return nil
		})
		if err != nil {
			return nil, err
		}
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

// summary formats the runs' results as a table with a totals line, the
// election times after leader kills and the faults this machine could not
// inject.
func summary(title string, results []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s", title)
	var ops, unknown, faults, violations, lost, harness, watchEvents, watchViol, leaseChecks, leaseViol, evWrites, evViol int
	var elections, agreed, detections, regionElections, converged, stalls []time.Duration
	var worst result
	var byKind [numFaultKinds]int
	var k8s k8sChecker
	nothingToSplit, scans, scanViol := 0, 0, 0
	skipped := map[string]bool{}
	fmt.Fprintf(&b, "\n%-12s %8s %8s %7s %10s %5s %7s %6s %7s %6s %8s\n", "seed", "ops", "unknown", "faults", "violation", "lost", "watched", "watch!", "leasechk", "lease!", "harness")
	for _, r := range results {
		fmt.Fprintf(&b, "%-12d %8d %8d %7d %10v %5d %7d %6d %7d %6d %8v\n", r.seed, r.ops, r.unknown, r.faults, r.violation, r.lost,
			r.watchEvents, r.watchViolations, r.leaseChecks, r.leaseViolations, r.harnessErr)
		watchEvents += r.watchEvents
		watchViol += r.watchViolations
		leaseChecks += r.leaseChecks
		leaseViol += r.leaseViolations
		ops += r.ops
		unknown += r.unknown
		faults += r.faults
		lost += r.lost
		if r.stall > 0 {
			stalls = append(stalls, r.stall)
			if r.stall > worst.stall {
				worst = r
			}
		}
		nothingToSplit += r.nothingToSplit
		scans += r.scans
		scanViol += r.scanViolations
		evWrites += r.evWrites
		evViol += r.evViolations
		converged = append(converged, r.converged...)
		elections = append(elections, r.elections...)
		agreed = append(agreed, r.agreed...)
		detections = append(detections, r.detections...)
		regionElections = append(regionElections, r.regionElections...)
		if r.k8s != nil {
			k8s.lists, k8s.pages, k8s.checks, k8s.revokes = k8s.lists+r.k8s.lists, k8s.pages+r.k8s.pages, k8s.checks+r.k8s.checks, k8s.revokes+r.k8s.revokes
			k8s.problems = append(k8s.problems, r.k8s.problems...)
		}
		for k, n := range r.byKind {
			byKind[k] += n
		}
		if r.violation {
			violations++
		}
		if r.harnessErr {
			harness++
		}
		if r.skipped != "" {
			skipped[r.skipped] = true
		}
	}
	fmt.Fprintf(&b, "runs %d, operations %d (%d unknown outcome), faults injected %d, linearizability violations %d, acknowledged writes lost %d, runs with harness errors %d\n",
		len(results), ops, unknown, faults, violations, lost, harness)
	var kinds []string
	for k, n := range byKind {
		if n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", faultKind(k), n))
		}
	}
	fmt.Fprintf(&b, "faults by kind: %s\n", strings.Join(kinds, ", "))
	if scans > 0 {
		fmt.Fprintf(&b, "scans (among the operations) %d, each key checked as a read inside the scan's window; order, range-bound or limit violations %d\n", scans, scanViol)
	}
	if nothingToSplit > 0 {
		fmt.Fprintf(&b, "split faults that found no region of two keys to split (PD learns key counts from heartbeats): %d\n", nothingToSplit)
	}
	if watchEvents+leaseChecks > 0 {
		fmt.Fprintf(&b, "watch events checked %d, watch-guarantee violations %d; lease checks %d, leases expired early %d\n", watchEvents, watchViol, leaseChecks, leaseViol)
	}
	if k8s.lists > 0 {
		fmt.Fprintf(&b, "Kubernetes-like traffic: paginated lists %d (%d pages), list+watch caches checked against a list at their revision %d, lease revokes checked %d, violations %d\n",
			k8s.lists, k8s.pages, k8s.checks, k8s.revokes, len(k8s.problems))
	}
	if len(stalls) > 0 {
		fmt.Fprintf(&b, "longest stretch without an answered operation per run (unavailability): %s (the longest: seed %d)\n", medianMax(stalls), worst.seed)
	}
	if len(converged) > 0 {
		fmt.Fprintf(&b, "eventual namespace: acknowledged writes %d, convergence or lost-write violations %d, replicas agreed after the faults stopped in %s (bound %v)\n",
			evWrites, evViol, medianMax(converged), convergeTimeout)
	}
	if len(elections) > 0 {
		fmt.Fprintf(&b, "leader kills %d (raft.tick_interval_ms %d, election_ticks %d): first election timeout of a survivor %s; new leader elected (its log) %s; every node agrees (polled) %s\n",
			len(elections), *tickFlag, *electionFlag, medianMax(detections), medianMax(elections), medianMax(agreed))
	}
	if len(regionElections) > 0 {
		fmt.Fprintf(&b, "leader-store kills %d (raft.tick_interval_ms %d, election_ticks %d): every region the store led had a new leader (its log) after %s\n",
			len(regionElections), *tickFlag, *electionFlag, medianMax(regionElections))
	}
	for s := range skipped {
		fmt.Fprintf(&b, "NOT INJECTED (this machine): %s\n", s)
	}
	return b.String()
}

// medianMax describes durations by their median and maximum.
func medianMax(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	return fmt.Sprintf("median %v, max %v", s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}
