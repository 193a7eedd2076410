//go:build e2e && faults

package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// faultKind is one nemesis action.
type faultKind int

const (
	killLeader faultKind = iota
	killRandom
	pauseLeader
	pauseRandom
	// The partitions need a network (-partitions): each node in its own
	// namespace.
	isolateLeader // the leader cut from every peer, both ways
	splitMinority // a minority cut from the majority, both ways
	oneWay        // a node's packets to every peer dropped; it still hears them
	transferLeader
	churnFollower // a follower removed, wiped, and added back
	diskFull      // a node's data filesystem filled up
	// FlareDB's PD admin operators (regions.go) on a region picked at
	// random.
	splitRegion        // split-region where its data halves
	moveReplica        // transfer-peer or transfer-region: a replica to the store without one
	transferRegionLead // transfer-leader to another voter
	// split-region and move-replica while a random store is cut from
	// every other process: it misses the split or the move and must catch
	// up once healed.
	splitIsolated
	moveIsolated
	numFaultKinds
)

var faultNames = [...]string{"kill-leader", "kill-random", "pause-leader", "pause-random",
	"isolate-leader", "split", "one-way", "transfer-leader", "churn-follower", "disk-full",
	"split-region", "move-replica", "transfer-region-leader", "split-isolated", "move-isolated"}

// chainfireKinds are the faults of a Chainfire run.
var chainfireKinds = []faultKind{killLeader, killRandom, pauseLeader, pauseRandom,
	isolateLeader, splitMinority, oneWay, transferLeader, churnFollower, diskFull}

// flaredbKinds are the faults of a FlareDB run: on stores (kill -9,
// SIGSTOP, partitions, where "leader" is the store leading the most
// regions, disk-full of a random store) and PD's admin operators.
var flaredbKinds = []faultKind{killLeader, killRandom, pauseLeader, pauseRandom, isolateLeader, splitMinority, oneWay, diskFull,
	splitRegion, moveReplica, transferRegionLead, splitIsolated, moveIsolated}

// supported returns the kinds of want that are in of, and an error naming
// them when there are none.
func supported(want, of []faultKind) ([]faultKind, error) {
	var out []faultKind
	for _, k := range want {
		if slices.Contains(of, k) {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("none of the faults %v applies here (these do: %v)", want, of)
	}
	return out, nil
}

func (k faultKind) String() string { return faultNames[k] }

// parseKinds parses a comma-separated list of fault names ("all" is every
// kind) and keeps those in of (the kinds of one store's runs). Its error
// names an unknown name, or says that none of the list is in of; whether
// that fails or skips the test is the caller's choice.
func parseKinds(s string, of []faultKind) ([]faultKind, error) {
	var out []faultKind
	for _, name := range strings.Split(s, ",") {
		if name == "all" {
			for k := range numFaultKinds {
				out = append(out, k)
			}
			continue
		}
		found := false
		for k, n := range faultNames {
			if n == name {
				out, found = append(out, faultKind(k)), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown fault %q (known: all, %s)", name, strings.Join(faultNames[:], ", "))
		}
	}
	return supported(out, of)
}

// needsNetwork reports whether k is a partition.
func (k faultKind) needsNetwork() bool {
	return k == isolateLeader || k == splitMinority || k == oneWay || k == splitIsolated || k == moveIsolated
}

// onLeader reports whether k targets the leader of the moment.
func (k faultKind) onLeader() bool {
	return k == killLeader || k == pauseLeader || k == isolateLeader || k == transferLeader || k == churnFollower
}

// isRegionOp reports whether k is a PD admin operator.
func (k faultKind) isRegionOp() bool {
	return k == splitRegion || k == moveReplica || k == transferRegionLead || k == splitIsolated || k == moveIsolated
}

// fault is one scheduled action: at At after traffic starts, Kind hits a
// node for Hold (a killed node stays down for Hold, a paused one frozen,
// a partition stands, a removed member stays out). Node picks the random
// node (or the minority's first node, or the follower among the leader's
// followers).
type fault struct {
	At   time.Duration
	Kind faultKind
	Node int
	Hold time.Duration
}

func (f fault) String() string {
	target := "leader"
	switch {
	case f.Kind.isRegionOp():
		target = fmt.Sprintf("region pick %d", f.Node)
		if f.Kind.needsNetwork() {
			target += fmt.Sprintf(", node %d isolated", f.Node+1)
		}
	case !f.Kind.onLeader():
		target = fmt.Sprintf("node %d", f.Node+1) // the framework's node names count from 1
	}
	return fmt.Sprintf("t=%v %s (%s) hold %v", f.At.Round(time.Millisecond), f.Kind, target, f.Hold.Round(time.Millisecond))
}

// schedule draws a fault schedule of kinds for a run of length d on n
// nodes from seed: a fault every 2-4 s, each held 1.2-3.2 s (at least the
// longest randomized election timeout of centra's default ticks, 2 x 0.6 s),
// one at a time.
func schedule(seed uint64, n int, d time.Duration, kinds []faultKind) []fault {
	r := rand.New(rand.NewPCG(seed, 0x6661756c7473))
	var out []fault
	at := time.Second
	for {
		f := fault{
			At:   at,
			Kind: kinds[r.IntN(len(kinds))],
			Node: r.IntN(n),
			Hold: 1200*time.Millisecond + time.Duration(r.Int64N(int64(2*time.Second))),
		}
		if f.At+f.Hold > d {
			return out
		}
		out = append(out, f)
		at += f.Hold + 2*time.Second + time.Duration(r.Int64N(int64(2*time.Second)))
	}
}

func describeSchedule(s []fault) string {
	lines := make([]string, len(s))
	for i, f := range s {
		lines[i] = "  " + f.String()
	}
	return strings.Join(lines, "\n")
}

// nemesis injects faults into a cluster.
type nemesis struct {
	t *testing.T
	c *framework.Cluster
	// targets are the processes the random kinds hit: the control-plane
	// nodes when nil, else (FlareDB) the stores.
	targets []*framework.Node
	// leader is the index into targets of the leader the leader kinds
	// hit: the control-plane leader when nil, else (FlareDB) the store
	// leading the most regions.
	leader func(context.Context) (int, error)
	net    *network // nil without -partitions
	disks  *disks   // nil without -disk-full
	// elections are the times from a leader's kill until the new leader
	// logged its election; agreed until every running node reported it
	// (through polling, so up to a poll round later).
	elections, agreed []time.Duration
	// detections are the times from a leader's kill until a survivor's
	// election timer fired (its "Election timeout" log line).
	detections []time.Duration
	// regionElections are, for each kill of the store leading the most
	// regions (FlareDB), the time until every region it led had logged a
	// new leader.
	regionElections []time.Duration
	// injected counts the faults injected by kind.
	injected [numFaultKinds]int
	// nothingToSplit counts the split-region faults that found no region
	// of two keys (counted in injected too: the kind was drawn).
	nothingToSplit int
}

// run runs schedule s, timed from start; it returns the number of faults
// injected and the first error that left the cluster in a state it could
// not restore.
func (nm *nemesis) run(ctx context.Context, start time.Time, s []fault) (int, error) {
	injected := 0
	for _, f := range s {
		select {
		case <-ctx.Done():
			return injected, nil
		case <-time.After(time.Until(start.Add(f.At))):
		}
		if err := nm.inject(ctx, f); err != nil {
			return injected, fmt.Errorf("%v: %w", f, err)
		}
		injected++
		nm.injected[f.Kind]++
	}
	return injected, nil
}

// inject applies f, holds it, undoes it and waits until every node serves
// reads again.
func (nm *nemesis) inject(ctx context.Context, f fault) error {
	// Recovery outlives the traffic: the run's end must not cut it short.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	if err := nm.disks.exited(nm.c); err != nil {
		return err
	}
	leader, err := nm.c.WaitLeader(rctx)
	if err != nil {
		return err
	}
	targets := nm.targets
	if targets == nil {
		targets = nm.c.Nodes()
	}
	pick := f.Node % len(targets)
	if f.Kind.onLeader() && nm.leader != nil {
		if pick, err = nm.leader(rctx); err != nil {
			return err
		}
	} else if f.Kind.onLeader() {
		pick = leader
	}
	target := targets[pick]
	switch f.Kind {
	case killLeader, killRandom:
		led := leadership(target.CurrentLog())
		if err := target.Kill(); err != nil {
			return err
		}
		switch {
		case f.Kind == killLeader && nm.leader == nil: // the control plane's leader
			if err := nm.timeElection(rctx, target); err != nil {
				return err
			}
		case f.Kind == killLeader:
			if err := nm.timeRegionElections(rctx, target, led); err != nil {
				return err
			}
		}
		hold(f)
		if err := target.Restart(); err != nil {
			return err
		}
	case pauseLeader, pauseRandom:
		if err := target.Pause(); err != nil {
			return err
		}
		hold(f)
		if err := target.Resume(); err != nil {
			return err
		}
	case isolateLeader, splitMinority, oneWay:
		if err := nm.partition(f, pick, len(targets)); err != nil {
			return errors.Join(err, nm.net.heal())
		}
		hold(f)
		if err := nm.net.heal(); err != nil {
			return err
		}
		nm.t.Logf("partition healed")
	case transferLeader:
		followers := nm.c.Followers(leader)
		to := nm.c.Node(followers[f.Node%len(followers)])
		if err := moveLeader(rctx, nm.c, target, to); err != nil {
			return err
		}
	case churnFollower:
		followers := nm.c.Followers(leader)
		if err := churn(rctx, nm.c, target, nm.c.Node(followers[f.Node%len(followers)]), f); err != nil {
			return err
		}
	case diskFull:
		if err := nm.disks.fill(rctx, nm.c, target, f); err != nil {
			return err
		}
	case splitRegion, moveReplica, transferRegionLead:
		if err := nm.regionOp(rctx, nm.c.Node(leader), f, nil); err != nil {
			return err
		}
	case splitIsolated, moveIsolated:
		if err := nm.partition(f, pick, len(targets)); err != nil {
			return errors.Join(err, nm.net.heal())
		}
		err := nm.regionOp(rctx, nm.c.Node(leader), f, func() error {
			hold(f)
			nm.t.Logf("partition healed")
			return nm.net.heal()
		})
		if err != nil {
			return errors.Join(err, nm.net.heal())
		}
	}
	for _, node := range append(slices.Clone(nm.c.Nodes()), nm.c.Stores()...) {
		if err := node.WaitReady(rctx); err != nil {
			return errors.Join(err, nm.disks.exited(nm.c))
		}
	}
	return nil
}

// timeElection waits until the running nodes agree on a leader after the
// leader old was killed, and records how long the election took by the
// new leader's log and by the nodes' agreement.
func (nm *nemesis) timeElection(ctx context.Context, old *framework.Node) error {
	begin := time.Now()
	i, err := nm.c.WaitLeader(ctx)
	if err != nil {
		return fmt.Errorf("no new leader after killing %s: %w", old, err)
	}
	agreed := time.Since(begin)
	nm.agreed = append(nm.agreed, agreed)
	times := logTimes(nm.c.Node(i).CurrentLog(), "Leader elected")
	elected := begin.Add(agreed) // not in the log: the agreement bounds it
	if n := len(times); n > 0 && !times[n-1].Before(begin) {
		elected = times[n-1]
	}
	nm.elections = append(nm.elections, elected.Sub(begin))
	// Detection: the first election timer of a survivor to fire after the
	// kill (PreVote campaigns start only then); the rest is the vote.
	detected := elected
	for _, n := range nm.c.Nodes() {
		if n == old || !n.Running() {
			continue
		}
		for _, t := range logTimes(n.CurrentLog(), "Election timeout, no heartbeat from leader") {
			if !t.Before(begin) && t.Before(detected) {
				detected = t
			}
		}
	}
	nm.detections = append(nm.detections, detected.Sub(begin))
	nm.t.Logf("after killing leader %s: first election timeout %v later, %s elected %v later (agreed after %v)", old,
		detected.Sub(begin).Round(time.Millisecond), nm.c.Node(i), elected.Sub(begin).Round(time.Millisecond), agreed.Round(time.Millisecond))
	return nil
}

// timeRegionElections waits until every region in led (the shards the
// killed store old led, by its log) has a leader that logged its election
// after the kill, on a store still running, and records how long the last
// of them took.
func (nm *nemesis) timeRegionElections(ctx context.Context, old *framework.Node, led []uint64) error {
	begin := time.Now()
	if len(led) == 0 {
		nm.t.Logf("killed store %s led no region by its log: no election to time", old)
		return nil
	}
	// Only what the survivors log from now on is parsed, every poll.
	from := map[*framework.Node]int{}
	for _, n := range nm.targets {
		if n != old && n.Running() {
			from[n] = len(n.CurrentLog())
		}
	}
	var last time.Time
	err := framework.WaitForCtx(ctx, func() error {
		elected := map[uint64]time.Time{}
		for n, off := range from {
			log := n.CurrentLog()
			for _, l := range leaderLines(log[min(off, len(log)):]) {
				if _, ok := elected[l.Shard]; !ok && l.Replica == l.Leader {
					elected[l.Shard] = l.Time
				}
			}
		}
		last = begin
		for _, shard := range led {
			t, ok := elected[shard]
			if !ok {
				return fmt.Errorf("region %d, led by the killed store %s, has no new leader yet", shard, old)
			}
			if t.After(last) {
				last = t
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	nm.regionElections = append(nm.regionElections, last.Sub(begin))
	nm.t.Logf("after killing store %s, leader of %d regions: the last of them elected a new leader %v later", old, len(led), last.Sub(begin).Round(time.Millisecond))
	return nil
}

// leaderLine is a replica's "Leader elected" log line.
type leaderLine struct {
	Time    time.Time `json:"time"`
	Shard   uint64    `json:"shard_id"`
	Replica uint64    `json:"replica_id"`
	Leader  uint64    `json:"leader_id"`
}

// leaderLines returns the "Leader elected" lines of a node's JSON log, in
// log order.
func leaderLines(log string) []leaderLine { return logRecords[leaderLine](log, "Leader elected") }

// leadership returns the shards whose leader a node last logged to be
// itself: what it led when the log ends.
func leadership(log string) []uint64 {
	last := map[uint64]leaderLine{}
	for _, l := range leaderLines(log) {
		last[l.Shard] = l
	}
	var led []uint64
	for shard, l := range last {
		if l.Replica == l.Leader {
			led = append(led, shard)
		}
	}
	return led
}

// logTimes returns the times of the lines of a node's JSON log whose
// message starts with msg, in log order.
func logTimes(log, msg string) []time.Time {
	var out []time.Time
	for _, rec := range logRecords[struct {
		Time time.Time `json:"time"`
	}](log, msg) {
		out = append(out, rec.Time)
	}
	return out
}

// logRecords decodes the lines of a node's JSON log whose message starts
// with msg, in log order.
func logRecords[T any](log, msg string) []T {
	var out []T
	for _, line := range strings.Split(log, "\n") {
		var rec T
		if strings.Contains(line, `"msg":"`+msg) && json.Unmarshal([]byte(line), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// hold keeps a fault in place for its duration (the fault's length, not a
// wait for a condition).
func hold(f fault) { time.Sleep(f.Hold) }

// partition applies the partition f among n targets, with pick the
// index of the leader (isolate-leader) or of the random target.
// isolate-leader and one-way cut the target from every other process of
// the network, split cuts a minority of the targets from the other
// targets only: a FlareDB split leaves the control-plane node (PD)
// reachable from both sides.
func (nm *nemesis) partition(f fault, pick, n int) error {
	var a, b []int
	switch f.Kind {
	case isolateLeader, splitIsolated, moveIsolated:
		a = []int{nm.netIndex(pick)}
		for j := range nm.net.nodes {
			if j != a[0] {
				b = append(b, j)
			}
		}
	case splitMinority:
		for i := range n {
			if i < (n-1)/2 {
				a = append(a, nm.netIndex((pick+i)%n))
			} else {
				b = append(b, nm.netIndex((pick+i)%n))
			}
		}
	case oneWay:
		from := nm.netIndex(pick)
		for j := range nm.net.nodes {
			if j != from {
				if err := nm.net.drop(from, j); err != nil {
					return err
				}
			}
		}
		nm.t.Logf("%s drops every packet to its peers", nm.netName(from))
		return nil
	}
	nm.t.Logf("partition: %v | %v", nm.netNames(a), nm.netNames(b))
	return nm.net.cut(a, b)
}

// netIndex is the network's index of target i: the stores' namespaces
// follow the control-plane nodes' (framework.WithNetns).
func (nm *nemesis) netIndex(i int) int {
	if nm.targets == nil {
		return i
	}
	return len(nm.c.Nodes()) + i
}

// netName names the process of the network's index j.
func (nm *nemesis) netName(j int) string {
	if nodes := nm.c.Nodes(); j < len(nodes) {
		return nodes[j].String()
	}
	return nm.c.Stores()[j-len(nm.c.Nodes())].String()
}

func (nm *nemesis) netNames(js []int) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = nm.netName(j)
	}
	return out
}

// moveLeader asks leader to hand leadership to node to (etcd's
// Maintenance.MoveLeader) and waits until the nodes agree on it.
func moveLeader(ctx context.Context, c *framework.Cluster, leader, to *framework.Node) error {
	cli, err := c.NewClient(leader.Endpoint())
	if err != nil {
		return err
	}
	defer cli.Close()
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.MoveLeader(mctx, to.ID); err != nil {
		return fmt.Errorf("move leader from %s to %s: %w", leader, to, err)
	}
	// Another election may follow the transfer under load: any agreed
	// leader will do.
	_, err = c.WaitLeader(ctx)
	return err
}

// churn removes follower through leader with `centra cluster
// member-remove`, stops it, wipes its data, keeps it out for f.Hold and
// adds it back with `centra cluster member-add` (a new replica ID), then
// waits until it serves reads and is a voter again (it joins as a
// non-voting replica, promoted once caught up): until then the cluster
// has one voter less, and the next fault would find no quorum.
func churn(ctx context.Context, c *framework.Cluster, leader, follower *framework.Node, f fault) error {
	id := fmt.Sprint(follower.ID)
	cli := func(args ...string) framework.CmdResult {
		return framework.RunCLI(append(append([]string{"cluster", args[0]}, c.TLSFlags()...), args[1:]...)...)
	}
	if r := cli("member-remove", "--endpoint", leader.Endpoint(), "--node-id", id); r.Err != nil {
		return fmt.Errorf("member-remove %s: %s", id, r)
	}
	if err := follower.Stop(); err != nil {
		return err
	}
	if err := errors.Join(follower.WipeData(), follower.SetJoining()); err != nil {
		return err
	}
	hold(f)
	if err := follower.Start(); err != nil {
		return err
	}
	if err := follower.WaitLog(ctx, "Waiting to be added to a cluster"); err != nil {
		return err
	}
	r := cli("member-add", "--endpoint", leader.Endpoint(), "--node-id", id, "--peer-url", follower.RaftAddr())
	if r.Err != nil {
		return fmt.Errorf("member-add %s: %s", id, r)
	}
	if err := follower.WaitReady(ctx); err != nil {
		return err
	}
	return framework.WaitForCtx(ctx, func() error {
		st, err := follower.Status(ctx)
		if err == nil && !st.IsLearner {
			return nil
		}
		return fmt.Errorf("%s not promoted to voter after its re-add (last status error: %v)", follower, err)
	})
}
