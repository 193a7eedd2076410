package chainfire

import (
	"errors"
	"slices"
	"testing"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
)

// TestMismatched: only a member that answered at the leader's revision and
// compact revision with another hash is judged corrupt.
func TestMismatched(t *testing.T) {
	local := stateHash{hash: 0xabc, rev: 10, compacted: 4}
	ans := func(member uint64, hash uint32, rev, compacted int64) peerHash {
		return peerHash{member: member, resp: &etcdserverpb.HashKVResponse{Hash: hash, HashRevision: rev, CompactRevision: compacted}}
	}
	got := mismatched(local, []peerHash{
		ans(2, 0xabc, 10, 4),                 // equal
		ans(3, 0xdef, 10, 4),                 // differs: corrupt
		ans(4, 0xdef, 9, 4),                  // another revision: not judged
		ans(5, 0xdef, 10, 5),                 // compacted differently: not judged
		{member: 6, err: errors.New("down")}, // no answer
	})
	if !slices.Equal(got, []uint64{3}) {
		t.Fatalf("mismatched = %v, want [3]", got)
	}
}
