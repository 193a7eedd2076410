package chainfire

import (
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
)

// memberTable is the metadata shard's membership table: node ID -> current
// replica ID, peer and client URLs, name and learner flag. Operators speak
// of node IDs; dragonboat never accepts a removed replica ID again, so a
// node that is removed, wiped and added back gets a new replica ID here.
type memberTable struct{ st *mvcc.Store }

// replicaCounter names the counter of the highest replica ID allocated.
const replicaCounter = "replica"

func (t memberTable) list(r pebble.Reader) ([]*raftcmdv1.MemberAttributes, error) {
	var out []*raftcmdv1.MemberAttributes
	err := t.st.Members(r, func(_ uint64, data []byte) error {
		m := &raftcmdv1.MemberAttributes{}
		if err := proto.Unmarshal(data, m); err != nil {
			return fmt.Errorf("chainfire: decode member record: %w", err)
		}
		out = append(out, m)
		return nil
	})
	return out, err
}

func (t memberTable) put(w pebble.Writer, m *raftcmdv1.MemberAttributes) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return err
	}
	return t.st.PutMember(w, m.NodeId, data)
}

func find(ms []*raftcmdv1.MemberAttributes, nodeID uint64) *raftcmdv1.MemberAttributes {
	for _, m := range ms {
		if m.NodeId == nodeID {
			return m
		}
	}
	return nil
}

// add records a new member and allocates its replica ID.
func (t memberTable) add(b *pebble.Batch, a *raftcmdv1.MemberAdd) (*raftcmdv1.MemberAttributes, error) {
	ms, err := t.list(b)
	if err != nil {
		return nil, err
	}
	if find(ms, a.NodeId) != nil {
		return nil, ErrMemberExists
	}
	next, err := t.st.Counter(b, replicaCounter)
	if err != nil {
		return nil, err
	}
	next = max(next, int64(a.ReplicaIdFloor))
	for _, m := range ms {
		if slices.Contains(m.PeerUrls, a.PeerUrl) {
			return nil, ErrPeerURLExists
		}
		next = max(next, int64(m.ReplicaId))
	}
	next++
	m := &raftcmdv1.MemberAttributes{NodeId: a.NodeId, ReplicaId: uint64(next), PeerUrls: []string{a.PeerUrl}, IsLearner: a.IsLearner}
	if err := t.st.SetCounter(b, replicaCounter, next); err != nil {
		return nil, err
	}
	return m, t.put(b, m)
}

func (t memberTable) remove(b *pebble.Batch, nodeID uint64) (*raftcmdv1.MemberAttributes, error) {
	ms, err := t.list(b)
	if err != nil {
		return nil, err
	}
	m := find(ms, nodeID)
	if m == nil {
		return nil, ErrMemberNotFound
	}
	return m, t.st.DeleteMember(b, nodeID)
}

func (t memberTable) promote(b *pebble.Batch, nodeID uint64) (*raftcmdv1.MemberAttributes, error) {
	ms, err := t.list(b)
	if err != nil {
		return nil, err
	}
	m := find(ms, nodeID)
	switch {
	case m == nil:
		return nil, ErrMemberNotFound
	case !m.IsLearner:
		return nil, ErrMemberNotLearner
	}
	m.IsLearner = false
	return m, t.put(b, m)
}

// publish merges the attributes a running node publishes (name, URLs) into
// its record, creating it for bootstrap members. A publish from an older
// incarnation of the node (another replica ID) is ignored.
func (t memberTable) publish(b *pebble.Batch, p *raftcmdv1.MemberAttributes) (*raftcmdv1.MemberAttributes, error) {
	ms, err := t.list(b)
	if err != nil {
		return nil, err
	}
	m := find(ms, p.NodeId)
	switch {
	case m == nil:
		m = &raftcmdv1.MemberAttributes{NodeId: p.NodeId, ReplicaId: p.ReplicaId, IsLearner: p.IsLearner}
	case m.ReplicaId != p.ReplicaId:
		return m, nil
	}
	m.Name, m.ClientUrls = p.Name, p.ClientUrls
	if len(p.PeerUrls) > 0 {
		m.PeerUrls = p.PeerUrls
	}
	return m, t.put(b, m)
}
