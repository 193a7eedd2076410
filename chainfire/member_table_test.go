package chainfire

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
)

func TestMemberTableNeverReusesReplicaIDs(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: noopLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tbl := memberTable{st: mvcc.New([]byte("t"))}
	apply := func(fn func(b *pebble.Batch) (*raftcmdv1.MemberAttributes, error)) (*raftcmdv1.MemberAttributes, error) {
		b := db.NewIndexedBatch()
		defer b.Close()
		m, err := fn(b)
		if err == nil {
			err = b.Commit(pebble.NoSync)
		}
		return m, err
	}
	add := func(node uint64, peer string, floor uint64) (*raftcmdv1.MemberAttributes, error) {
		return apply(func(b *pebble.Batch) (*raftcmdv1.MemberAttributes, error) {
			return tbl.add(b, &raftcmdv1.MemberAdd{NodeId: node, PeerUrl: peer, ReplicaIdFloor: floor})
		})
	}
	// Bootstrap members 1-3 publish themselves (replica = node ID).
	for id := uint64(1); id <= 3; id++ {
		if _, err := apply(func(b *pebble.Batch) (*raftcmdv1.MemberAttributes, error) {
			return tbl.publish(b, &raftcmdv1.MemberAttributes{NodeId: id, ReplicaId: id, Name: "n", ClientUrls: []string{"http://x"}})
		}); err != nil {
			t.Fatal(err)
		}
	}
	m4, err := add(4, "10.0.0.4:2380", 3)
	if err != nil || m4.ReplicaId != 4 {
		t.Fatalf("add 4: %v %v", m4, err)
	}
	if _, err := add(4, "10.0.0.9:2380", 3); !errors.Is(err, ErrMemberExists) {
		t.Fatalf("duplicate node: %v", err)
	}
	if _, err := add(5, "10.0.0.4:2380", 3); !errors.Is(err, ErrPeerURLExists) {
		t.Fatalf("duplicate peer: %v", err)
	}
	if _, err := apply(func(b *pebble.Batch) (*raftcmdv1.MemberAttributes, error) { return tbl.remove(b, 4) }); err != nil {
		t.Fatal(err)
	}
	// Re-adding node 4 gives a new replica ID, even below the floor's view.
	m4b, err := add(4, "10.0.0.4:2380", 3)
	if err != nil || m4b.ReplicaId != 5 {
		t.Fatalf("re-add 4: %v %v", m4b, err)
	}
	// A floor from the raft membership (removed replicas) wins.
	m6, err := add(6, "10.0.0.6:2380", 9)
	if err != nil || m6.ReplicaId != 10 {
		t.Fatalf("add 6 above floor: %v %v", m6, err)
	}
	// A publish from an old incarnation does not overwrite the record.
	if _, err := apply(func(b *pebble.Batch) (*raftcmdv1.MemberAttributes, error) {
		return tbl.publish(b, &raftcmdv1.MemberAttributes{NodeId: 4, ReplicaId: 4, Name: "stale"})
	}); err != nil {
		t.Fatal(err)
	}
	ms, err := tbl.list(db)
	if err != nil {
		t.Fatal(err)
	}
	if m := find(ms, 4); m.ReplicaId != 5 || m.Name == "stale" {
		t.Fatalf("record of node 4: %v", m)
	}
}

type noopLogger struct{}

func (noopLogger) Infof(string, ...any)  {}
func (noopLogger) Errorf(string, ...any) {}
func (noopLogger) Fatalf(string, ...any) {}
