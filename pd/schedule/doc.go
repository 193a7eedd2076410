// Package schedule is the placement driver's decision making: operators
// and their controller, the replica checker, and the schedulers
// (balance-leader, balance-region, evict-leader, grant-leader), with the
// limits that throttle them.
//
// It sees the cluster only through the narrow Cluster interface (TiKV PD's
// ClusterInformer idea): a snapshot of stores and regions, the config and
// an ID allocator. It never touches storage or the server's lock, so every
// checker and scheduler is table-tested against an in-memory fake. The pd
// package feeds it snapshots from its patrol loop and region heartbeats,
// and turns the current step of a region's operator into the heartbeat
// response (see ../DESIGN.md, "Scheduling").
package schedule
