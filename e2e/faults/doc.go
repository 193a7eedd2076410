//go:build e2e && faults

// Package faults is the fault-injection suite: it starts real centra
// control-plane processes with e2e/framework, drives concurrent etcd
// clients (put, get, txn compare-and-swap on a few keys) while a seeded
// nemesis kills (SIGKILL) and pauses (SIGSTOP longer than the election
// timeout) the leader or a random node, records every operation with its
// call and return times, and checks the history with porcupine against a
// per-key register model. An operation whose outcome is unknown (timeout,
// lost connection) may take effect at any later time: its return time is
// infinite. After the traffic, every node is killed and restarted, and no
// acknowledged write may be missing.
//
// It is behind the build tags e2e and faults so `make test` does not run
// it; run `make test-faults RUNS=N`. A violation prints the run's seed and
// fault schedule and writes porcupine's HTML visualization under -out.
package faults
