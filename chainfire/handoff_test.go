package chainfire

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	sm "github.com/lni/dragonboat/v4/statemachine"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/chainfire/internal/lease"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// proposeEntries encodes cmds as raft entries 1..n; the commands at the
// indexes in waiting are registered with f's handoffs as this process's
// proposals (the others are applied as other members' entries).
func proposeEntries(t *testing.T, f *fsm, cmds []*raftcmdv1.Command, waiting ...int) ([]sm.Entry, map[int]*handoff) {
	t.Helper()
	entries := make([]sm.Entry, len(cmds))
	handed := map[int]*handoff{}
	for i, c := range cmds {
		c.Proposal = f.handoffs.id()
		data, err := encodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(waiting, i) {
			handed[i] = f.handoffs.add(c, data)
		}
		entries[i] = sm.Entry{Index: uint64(i + 1), Cmd: data}
	}
	return entries, handed
}

func newTestFSM(t *testing.T) (*fsm, *pebble.DB) {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := newFSM(db, raftnode.ShardKeyspace(raftnode.MetadataShardID), lease.New(nil), slog.New(slog.DiscardHandler))
	if err := f.Load(db); err != nil {
		t.Fatal(err)
	}
	return f, db
}

// TestHandoffAppliesLikeTheLog: the proposing replica applies its own
// commands from the proposer's messages (no decode) and hands the results
// over in memory; another replica decodes the same entries. Both end with
// the same state, the proposer gets the result of its own command (not of
// an identical one proposed elsewhere), and no result is encoded.
func TestHandoffAppliesLikeTheLog(t *testing.T) {
	put := func(k, v string, prev bool) *raftcmdv1.Command {
		return &raftcmdv1.Command{Version: 1, Cmd: &raftcmdv1.Command_Put{Put: &etcdserverpb.PutRequest{Key: []byte(k), Value: []byte(v), PrevKv: prev}}}
	}
	cmds := []*raftcmdv1.Command{
		put("a", "1", false), put("a", "1", false), put("b", "2", true), put("a", "3", true),
		{Version: 1, Cmd: &raftcmdv1.Command_DeleteRange{DeleteRange: &etcdserverpb.DeleteRangeRequest{Key: []byte("b"), PrevKv: true}}},
		{Version: 1, Cmd: &raftcmdv1.Command_Compaction{Compaction: &etcdserverpb.CompactionRequest{Revision: 99}}}, // future: an apply error
	}
	proposer, pdb := newTestFSM(t)
	other, odb := newTestFSM(t)
	entries, waiting := proposeEntries(t, proposer, cmds, 1, 3, 4, 5)
	otherEntries := slices.Clone(entries)
	for _, run := range []struct {
		f       *fsm
		db      *pebble.DB
		entries []sm.Entry
	}{{proposer, pdb, entries}, {other, odb, otherEntries}} {
		b := run.db.NewIndexedBatch()
		if err := run.f.Apply(b, run.entries); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		b.Close()
		run.f.Applied(uint64(len(run.entries)))
	}
	for i := range entries {
		if p, o := entries[i].Result, otherEntries[i].Result; p.Value != o.Value || len(p.Data)+len(o.Data) != 0 {
			t.Errorf("entry %d: result %+v on the proposer, %+v elsewhere; want the same code and nothing encoded", i+1, p, o)
		}
	}
	if got := entries[5].Result.Value; applyErrorFromCode(got) != ErrFutureRev {
		t.Errorf("compaction to a future revision: result code %d, want %v", got, ErrFutureRev)
	}
	if waiting[5].resp != nil {
		t.Errorf("failed compaction handed over %v; want no result", waiting[5].resp)
	}
	// Entry 2 is the second identical put: revision 3 (revision 1 is the
	// initial one), not the revision of entry 1.
	if r, ok := waiting[1].resp.(*etcdserverpb.PutResponse); !ok || r.Header.GetRevision() != 3 {
		t.Errorf("entry 2: handed over %v, want a put response at revision 3", waiting[1].resp)
	}
	if r, ok := waiting[3].resp.(*etcdserverpb.PutResponse); !ok || string(r.PrevKv.GetValue()) != "1" || r.Header.GetRevision() != 5 {
		t.Errorf("entry 4: handed over %v, want revision 5 with prev_kv a=1", waiting[3].resp)
	}
	if r, ok := waiting[4].resp.(*etcdserverpb.DeleteRangeResponse); !ok || r.Deleted != 1 || string(r.PrevKvs[0].GetValue()) != "2" {
		t.Errorf("entry 5: handed over %v, want one deleted key b=2", waiting[4].resp)
	}
	if p, o := dump(t, pdb), dump(t, odb); p != o {
		t.Errorf("state after the in-memory apply differs from the decoded one:\nproposer:\n%s\nother:\n%s", p, o)
	}
}

func dump(t *testing.T, db *pebble.DB) string {
	t.Helper()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out bytes.Buffer
	for it.First(); it.Valid(); it.Next() {
		fmt.Fprintf(&out, "%q=%q\n", it.Key(), it.Value())
	}
	return out.String()
}

// TestProposalID: the proposal ID is read from the encoded command without
// decoding it, and an entry matches a waiting proposal only with the same
// ID and the same bytes.
func TestProposalID(t *testing.T) {
	h := newHandoffs()
	cmd := &raftcmdv1.Command{Version: 4, AuthRevision: 7, Cmd: &raftcmdv1.Command_Txn{Txn: &etcdserverpb.TxnRequest{
		Success: []*etcdserverpb.RequestOp{{Request: &etcdserverpb.RequestOp_RequestPut{RequestPut: &etcdserverpb.PutRequest{Key: []byte("k")}}}},
	}}}
	if id := proposalID(mustMarshal(t, cmd)); id != 0 {
		t.Fatalf("proposalID without the field = %d, want 0", id)
	}
	cmd.Proposal = h.id()
	data := mustMarshal(t, cmd)
	if id := proposalID(data); id != cmd.Proposal {
		t.Fatalf("proposalID = %d, want %d", id, cmd.Proposal)
	}
	for _, bad := range [][]byte{{0xff}, data[:len(data)-3], {0x8a, 0x01, 0x05}} {
		if id := proposalID(bad); id != 0 {
			t.Errorf("proposalID(% x) = %d, want 0 for a bad encoding", bad, id)
		}
	}
	if h.find(data) != nil {
		t.Fatal("find matched a proposal that was never added")
	}
	p := h.add(cmd, data)
	if h.find(data) != p {
		t.Fatal("find did not match the added proposal")
	}
	other := proto.Clone(cmd).(*raftcmdv1.Command)
	other.AuthRevision = 8 // same ID, another command (another member's)
	if h.find(mustMarshal(t, other)) != nil {
		t.Fatal("find matched another command carrying the same ID")
	}
	h.done(cmd.Proposal)
	if h.find(data) != nil {
		t.Fatal("find matched a proposal after done")
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestEncodeCommand: the KV commands, encoded by the generated code,
// decode with protobuf-go (as older replicas do) to the same command; a
// command with strings is refused when a string is not UTF-8, as
// protobuf-go refuses to decode it.
func TestEncodeCommand(t *testing.T) {
	put := &etcdserverpb.PutRequest{Key: []byte("k\x00\xff"), Value: []byte("v"), Lease: 7, PrevKv: true}
	kv := []*raftcmdv1.Command{
		{Version: 1, Proposal: 1<<63 + 5, Cmd: &raftcmdv1.Command_Put{Put: put}},
		{Version: 1, AuthRevision: 3, Cmd: &raftcmdv1.Command_DeleteRange{DeleteRange: &etcdserverpb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}}},
		{Version: 1, Cmd: &raftcmdv1.Command_Compaction{Compaction: &etcdserverpb.CompactionRequest{Revision: 9, Physical: true}}},
		{Version: 1, Cmd: &raftcmdv1.Command_Txn{Txn: &etcdserverpb.TxnRequest{
			Compare: []*etcdserverpb.Compare{{Key: []byte("k"), Target: etcdserverpb.Compare_MOD, TargetUnion: &etcdserverpb.Compare_ModRevision{ModRevision: 4}}},
			Success: []*etcdserverpb.RequestOp{{Request: &etcdserverpb.RequestOp_RequestPut{RequestPut: put}}, {Request: &etcdserverpb.RequestOp_RequestTxn{RequestTxn: &etcdserverpb.TxnRequest{
				Failure: []*etcdserverpb.RequestOp{{Request: &etcdserverpb.RequestOp_RequestRange{RequestRange: &etcdserverpb.RangeRequest{Key: []byte("r"), Limit: 2}}}},
			}}}},
		}}},
	}
	for _, c := range kv {
		data, err := encodeCommand(c)
		if err != nil {
			t.Fatalf("encode %v: %v", c, err)
		}
		got := new(raftcmdv1.Command)
		if err := proto.Unmarshal(data, got); err != nil || !proto.Equal(got, c) {
			t.Fatalf("protobuf-go decodes %v as %v (%v)", c, got, err)
		}
		if id := proposalID(data); id != c.Proposal {
			t.Fatalf("proposalID = %d, want %d", id, c.Proposal)
		}
	}
	bad := &raftcmdv1.Command{Version: 1, Cmd: &raftcmdv1.Command_MemberAttributes{MemberAttributes: &raftcmdv1.MemberAttributes{Name: "n\xff"}}}
	if _, err := encodeCommand(bad); err == nil {
		t.Fatal("a command with a string that is not UTF-8 was encoded")
	}
}
