//go:build e2e

// Package framework runs clusters of real centra processes for the
// end-to-end tests in e2e/, in the manner of etcd's tests/framework/e2e.
//
// A test calls NewCluster with functional options (WithNodes, WithTLS,
// WithTickMs, WithDevMode). Every node gets its own data directory, log
// file and --config file rendered from config.Config (so the real loader
// parses it), on loopback ports that no other node of the test process
// uses. NewCluster returns once every node serves linearizable reads and
// all of them agree on a leader; t.Cleanup stops every process and, when
// the test failed, logs the tail of each node's log.
//
// Faults are process-level: Node.Kill (SIGKILL), Node.Stop (SIGTERM),
// Node.Restart (same data directory and config), Node.Pause and
// Node.Resume (SIGSTOP, SIGCONT).
//
// Membership: Cluster.PrepareNode makes a node that joins through
// member-add (bootstrap = false, initial_members = []), started with
// Node.Start; Node.WipeData, Node.SetJoining and Node.StartWithArgs (e.g.
// --force-new-cluster) replay the remove/wipe/re-add and recovery
// procedures; MultiCallBin links the binary under the runbooks' program
// names (chainfire-client, chainfire-server) for RunBin.
//
// Stores: WithStores(n) starts n store processes (store_id 1..n) after the
// control plane, each as `centra serve --role=store --config flaredb.toml`
// with the scale-out runbook's flaredb.toml (StoreConfig.TOML) and pd_addr
// listing every control-plane node; Cluster.PrepareStore makes another
// (WithStoreID, WithServerBin for a flaredb-server link), and
// Node.StartExpectingExit runs one that must be refused. Node.Do,
// Node.PDStores and Node.PDStore speak the placement driver's HTTP API.
//
// Nothing here sleeps for a fixed time:
// waits poll a condition with a short tick until a deadline (Eventually,
// Node.WaitReady, Cluster.WaitLeader). WaitForCtx is that poll for a
// caller's own condition, ending with its context; WaitFor and Eventually
// are it under a timeout.
//
// The centra binary comes from the -centra-bin flag (make test-e2e passes
// bin/centra) or, when it is empty, from `go build` in Main. Etcdctl is
// built on first use from the nested module in e2e/tools, which pins its
// version.
//
// Everything is behind the e2e build tag: go test -tags e2e ./e2e/...
package framework
