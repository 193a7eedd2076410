package chainfire

import (
	"testing"

	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
)

// TestNestedTxnCommandVersions: a txn with a nested txn is proposed at
// nestedTxnVersion, and the log replays as it was written: an entry of an
// older version evaluates the nested comparison after the outer put (its
// Else branch runs), one of nestedTxnVersion before it (etcd's: Then).
func TestNestedTxnCommandVersions(t *testing.T) {
	f, db := newTestFSM(t)
	put := func(k, v string) *etcdserverpb.RequestOp {
		return &etcdserverpb.RequestOp{Request: &etcdserverpb.RequestOp_RequestPut{RequestPut: &etcdserverpb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
	}
	valueIs := func(k, v string) *etcdserverpb.Compare {
		return &etcdserverpb.Compare{Key: []byte(k), Target: etcdserverpb.Compare_VALUE, Result: etcdserverpb.Compare_EQUAL,
			TargetUnion: &etcdserverpb.Compare_Value{Value: []byte(v)}}
	}
	nestedTxn := func(k string) *raftcmdv1.Command {
		inner := &etcdserverpb.TxnRequest{Compare: []*etcdserverpb.Compare{valueIs(k, "v0")}, Success: []*etcdserverpb.RequestOp{put(k+"/r", "then")}, Failure: []*etcdserverpb.RequestOp{put(k+"/r", "else")}}
		return &raftcmdv1.Command{Cmd: &raftcmdv1.Command_Txn{Txn: &etcdserverpb.TxnRequest{
			Success: []*etcdserverpb.RequestOp{put(k, "v1"), {Request: &etcdserverpb.RequestOp_RequestTxn{RequestTxn: inner}}},
		}}}
	}
	if v := versionFor(nestedTxn("x")); v != nestedTxnVersion {
		t.Fatalf("versionFor(txn with a nested txn) = %d, want %d", v, nestedTxnVersion)
	}
	old, cur := nestedTxn("old"), nestedTxn("new")
	old.Version, cur.Version = alarmVersion, nestedTxnVersion
	cmds := []*raftcmdv1.Command{
		{Version: 1, Cmd: &raftcmdv1.Command_Put{Put: &etcdserverpb.PutRequest{Key: []byte("old"), Value: []byte("v0")}}},
		{Version: 1, Cmd: &raftcmdv1.Command_Put{Put: &etcdserverpb.PutRequest{Key: []byte("new"), Value: []byte("v0")}}},
		old, cur,
	}
	// The txns wait for their results as proposals of this process do.
	entries, waiting := proposeEntries(t, f, cmds, 2, 3)
	b := db.NewIndexedBatch()
	defer b.Close()
	if err := f.Apply(b, entries); err != nil {
		t.Fatal(err)
	}
	for i, want := range map[int]bool{2: false, 3: true} {
		r, ok := waiting[i].resp.(*etcdserverpb.TxnResponse)
		if !ok || entries[i].Result.Value != 0 {
			t.Fatalf("entry %d: result %+v, handed over %T", i+1, entries[i].Result, waiting[i].resp)
		}
		if got := r.Responses[1].GetResponseTxn().GetSucceeded(); got != want {
			t.Fatalf("entry %d (version %d): nested txn succeeded = %v, want %v", i+1, cmds[i].Version, got, want)
		}
	}
}
