package chainfire

import (
	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// StateCheck is what CheckState read.
type StateCheck struct {
	Revision, Compacted int64
	Versions, RevIndex  int
}

// CheckState verifies the MVCC invariants of Chainfire's state in a state DB
// (`centra debug check`; see mvcc's Store.Check): the revision counters,
// every key version against the revision index and back, and lease
// attachments. It reads r only.
func CheckState(r pebble.Reader, progress func(records int)) (StateCheck, []string, error) {
	st := mvcc.New(raftnode.ShardKeyspace(raftnode.MetadataShardID).Key(nil))
	s, problems, err := st.Check(r, progress)
	return StateCheck{Revision: s.Meta.Revision, Compacted: s.Meta.Compacted, Versions: s.Versions, RevIndex: s.RevIndex}, problems, err
}
