//go:build e2e && faults

// Package faults is the fault-injection suite: it starts real centra
// processes with e2e/framework, drives concurrent clients while a seeded
// nemesis injects faults, records every operation with its call and return
// times, and checks the history with porcupine against a per-key register
// model. An operation whose outcome is unknown (timeout, lost connection)
// may take effect at any later time: its return time is infinite. After
// the traffic every process is killed and restarted, and no acknowledged
// write may be missing.
//
// Chainfire (3 or 5 control-plane nodes, -nodes) gets get/put/delete/txn-CAS
// traffic on a few keys and these faults (-faults, default all):
//
//   - kill-leader, kill-random: SIGKILL, restart after the hold; after a
//     leader kill the time to a new leader is measured (the new leader's
//     "Leader elected" log line, and every node's agreement by polling)
//     and its median and maximum reported;
//   - pause-leader, pause-random: SIGSTOP for longer than the election
//     timeout, then SIGCONT;
//   - isolate-leader, split (a minority from the majority), one-way (a
//     node's packets to its peers dropped, theirs still arrive): each node
//     runs in its own network namespace (ip netns exec) on a veth pair
//     joined by a bridge in the test's namespace, where the clients run;
//     a partition is a set of blackhole routes inside the nodes'
//     namespaces, so it needs neither iptables, nft nor tc actions. The
//     names carry the test process's pid; namespaces and bridges are
//     removed at the test's end and leftovers of killed runs by the next;
//   - transfer-leader: Maintenance.MoveLeader to a follower;
//   - churn-follower: `centra cluster member-remove` of a follower, wipe,
//     `member-add` of the same node ID (a new replica ID), and a wait until
//     it is a voter again;
//   - disk-full: every node's data directory is on a tmpfs of its own
//     (256 MiB, storage.min_free_bytes 64 MiB), which the fault fills with
//     a ballast file to 32 MiB free: the node must raise its NOSPACE alarm
//     (writes refused with "database space exceeded", which the history
//     drops as no-ops), keep running, and clear the alarm once the ballast
//     is gone; a node exit fails the run.
//
// Partitions and disk-full need root; without it randomized runs drop them
// with a NOT INJECTED line in the summary, and TestFaultsCI skips those
// scenarios with the reason. Through the faults a watcher checks etcd's
// watch guarantees (resumed from its next revision every few seconds and
// after failures, through each node in turn: ordered, no duplicates, every
// event of a revision in one response, and equal to a fresh replay from
// the start revision), and a lease checker holds a key under a lease with
// keepalives (the key must not vanish before the call of the last
// acknowledged keepalive plus the TTL).
//
// Beside that traffic, Kubernetes-like clients (k8s.go) work on a few
// objects as kube-apiserver's etcd3 store does: create-if-absent by a txn
// on ModRevision 0, update by a txn on the ModRevision last seen, the
// current object from the txn's else branch on a conflict; values are
// unique, so a ModRevision compare is a compare on the value written at
// that revision and the register model checks these txns too. An informer
// lists the objects in pages of two (the later pages at the first page's
// revision, as a continue token does: key order, no repeats, nothing newer
// than that revision, the first page's count), watches from the list's
// revision, and compares its cache with a list at the revision of its last
// event; the first page of each list is a linearizable read and goes into
// the history. A lease revoker grants, puts a key under the lease, keeps
// it alive once and revokes it: the key must be there until the revoke and
// gone, with the lease unknown, once the revoke is acknowledged.
//
// FlareDB (four stores, so that a replica can move, and one control-plane
// node) gets get/put/delete/CAS/scan traffic on a strong namespace through
// flaredb/client, checked with the same model, and puts on an eventual
// namespace, one writer per key. A scan (a tenth of the requests: from a
// random key to a later one or the namespace's end, limit 0-3, either
// order) is checked as a read of every key it covered, each inside the
// scan's call-return window (the guarantee flaredb/client's doc.go states:
// each region's part is read at its own time), and for key order, range
// bounds and limit. Its faults (-faults picks among them):
//
//   - kill-leader, pause-leader (the store leading the most regions, by PD),
//     kill-random, pause-random of a store; after a leader-store kill the
//     time until every region the store led (by its own last "Leader
//     elected" lines) has a new leader that logged its election is
//     measured and its median and maximum reported; the regions'
//     re-election also shows in the longest stretch without an answered
//     operation;
//   - disk-full of a random store (leader or follower), on the same
//     tmpfs per process as Chainfire's (the stores' after the nodes'):
//     the store must report disk_low to PD, PD shows it, the leaders of
//     its regions refuse puts and CAS with ResourceExhausted (a request
//     refused so on its only attempt is dropped from the history as a
//     no-op; one refused on a retry after an attempt of unknown outcome
//     stays unknown), no store may exit, and once the ballast is gone PD
//     must clear disk_low and a put must succeed again.
//     TestFlareDBFollowerDiskFull checks the follower case step by step;
//   - isolate-leader (the store leading the most regions, by PD, cut from
//     every other process), split (a minority of the stores cut from the
//     other stores; the control-plane node, PD, stays reachable from
//     both sides), one-way (a store's packets to every other process
//     dropped): the stores run in network namespaces after the
//     control-plane node's. Clients still reach a cut-off leader, and
//     what it holds in flight stalls them: it answers only once it
//     stepped down (CheckQuorum, one to two election timeouts) and then
//     had no known leader for two election timeouts more (raftnode's
//     limit, ErrNoLeader; the client then finds the new leader), or, when
//     the partition heals first, two election timeouts after its first
//     leader event and at least half of one after it hears the new leader
//     (raftnode's bound on a write in flight across a leader change).
//     That is 3-4 election timeouts without an answered operation:
//     ~1.8-2.4 s at the default of 6 ticks. When the heal came just
//     before the no-leader limit, the first version of that bound (two
//     election timeouts after hearing the new leader) stalled for the
//     hold plus two election timeouts: seed 1000 (2.05 s isolation) 3.42 s,
//     2.60 s since raftnode's graceAfterLeader. Answering sooner
//     would turn writes a new leader still commits into unknown outcomes;
//     it is left as is (see flaredb/DESIGN.md, "KV API"). Before that
//     bound, a write held by the deposed leader waited for the suite's 5 s
//     request timeout whenever it heard the new leader in time (seeds
//     20261535: 5.01 s, now 2.47 s; 20261540: 4.95 s, now 1.60 s; the
//     older unexplained seeds replayed at 2.53 s (2009, was 3.68 s) and
//     3.42 / 2.30 s (1000, was 3.47 s));
//   - PD's admin operators through its HTTP API (POST
//     /pd/api/v1/operators) on a region picked by the seed: split-region
//     (policy scan: where the data halves) of the region with the most
//     keys, move-replica (transfer-peer, or transfer-region, to the store
//     without a peer), transfer-region-leader (transfer-leader to another
//     voter). The nemesis waits until PD's view of the region shows the
//     operator's effect; one not done within 40 s (the cluster is whole:
//     faults come one at a time) fails the run as unavailability. PD's
//     balance schedulers are off, so that only the schedule moves
//     replicas. Stores check splits and heartbeat regions every second;
//   - split-isolated, move-isolated: split-region or move-replica while a
//     random store is cut from every other process for the hold, so that
//     it misses the split or the conf change and must catch up once
//     healed (the convergence check then scans its replicas too).
//
// After the faults stop, the eventual namespace must converge: every
// replica of every region PD lists is scanned directly (a Scan sent to
// that replica's store with the region's ID and epoch, so a replica that
// cannot serve fails the read rather than handing it to another) until
// all replicas of each region hold the same pairs, within 30 s; then each
// key's value must be its last acknowledged write's or a later
// (unacknowledged) write's, and no other key may appear. The same check
// runs again after every process was killed and restarted.
//
// TestFaultsCI, a bounded subset (six 15 s scenarios), runs with
// `make test` (test-faults-ci); `make test-faults RUNS=N` runs N randomized
// runs in all, the first half (rounded up) on Chainfire and the rest on
// FlareDB (-runs and -flaredb-runs), and prints a summary table per store. A violation
// prints the run's seed and fault schedule and writes porcupine's HTML
// visualization under -out; -seed replays a run's schedule (the
// interleaving of the traffic is the machine's), and -keep (make KEEP=1)
// keeps the nodes' logs of runs that passed. -tls (make TLS=1) runs every
// cluster with mutual TLS on every listener (raft, API, stores: certificates
// of a fresh CA naming 127.0.0.1 and the node's namespace address), as the
// runbooks deploy it; TestFaultsCI runs its partition, membership and
// flaredb-partition scenarios that way, the others in plaintext.
package faults
