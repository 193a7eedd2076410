package raftnode

import (
	"runtime"
	"strings"
	"testing"
)

// TestSerialProposalsDoNotReallocateTheLog checks that the entry-slice
// sizes set in entryslice.go reach dragonboat's in-memory log: with its
// default of 512 entries every serial proposal allocated ~44 KiB (the
// fresh slice after each apply), with 16 it is ~5 KiB in all.
func TestSerialProposalsDoNotReallocateTheLog(t *testing.T) {
	c := newCluster(t, nil)
	c.bootstrap(1)
	leaderID, _ := c.waitLeader()
	leader := c.members[leaderID]
	value := strings.Repeat("v", 256)
	c.propose(leader, "warm", value)
	const n = 300
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		c.propose(leader, "k", value)
	}
	runtime.ReadMemStats(&after)
	perProposal := (after.TotalAlloc - before.TotalAlloc) / n
	if perProposal > 20<<10 {
		t.Fatalf("%d bytes allocated per serial proposal, want < 20 KiB: dragonboat's in-memory log is reallocated after every apply again; check that entryslice.go's linknamed variables still exist and are used by internal/raft.inMemory", perProposal)
	}
	t.Logf("%d bytes allocated per serial proposal", perProposal)
}
