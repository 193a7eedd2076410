package chainfire

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
)

// proposalField is the number of raftcmd's Command.proposal.
const proposalField = 17

// handoffs passes commands and their results between the requests that
// proposed them and the apply goroutine of the same process, so the
// proposing replica neither decodes its own entry nor encodes and decodes
// the result (see DESIGN.md, "Apply"). Every other replica decodes the entry
// and drops the result: nobody there waits for it.
type handoffs struct {
	next atomic.Uint64 // the last proposal ID handed out
	mu   sync.Mutex
	m    map[uint64]*handoff
}

// handoff is one proposal in flight. The apply goroutine sets resp before
// dragonboat completes the request, so the proposer reads it after its
// result arrived.
type handoff struct {
	cmd  *raftcmdv1.Command
	data []byte // cmd encoded, as proposed
	resp proto.Message
}

func newHandoffs() *handoffs {
	h := &handoffs{m: map[uint64]*handoff{}}
	// A random start keeps the IDs of this process apart from those of
	// earlier runs whose entries may still be applied, and from other
	// members' (an entry is matched by its bytes too, see find).
	var seed [8]byte
	_, _ = rand.Read(seed[:]) // never fails on Linux (see crypto/rand)
	h.next.Store(binary.LittleEndian.Uint64(seed[:]))
	return h
}

// id returns a new proposal ID (never 0, which means "unset").
func (h *handoffs) id() uint64 {
	for {
		if id := h.next.Add(1); id != 0 {
			return id
		}
	}
}

// add registers cmd, encoded as data under cmd.Proposal, until done.
func (h *handoffs) add(cmd *raftcmdv1.Command, data []byte) *handoff {
	p := &handoff{cmd: cmd, data: data}
	h.mu.Lock()
	h.m[cmd.Proposal] = p
	h.mu.Unlock()
	return p
}

// done forgets a proposal once its request stopped waiting.
func (h *handoffs) done(id uint64) {
	h.mu.Lock()
	delete(h.m, id)
	h.mu.Unlock()
}

// find returns the waiting proposal that entry (a raft entry's command)
// is, or nil.
func (h *handoffs) find(entry []byte) *handoff {
	id := proposalID(entry)
	if id == 0 {
		return nil
	}
	h.mu.Lock()
	p := h.m[id]
	h.mu.Unlock()
	if p == nil || !bytes.Equal(p.data, entry) {
		return nil
	}
	return p
}

// proposalID reads Command.proposal from an encoded command without
// decoding the rest (0 when absent or the encoding is bad: the entry is then
// decoded as usual, which reports the bad encoding).
func proposalID(b []byte) uint64 {
	var id uint64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0
		}
		b = b[n:]
		if num == proposalField && typ == protowire.Fixed64Type {
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return 0
			}
			id, b = v, b[n:] // the last occurrence wins, as in proto.Unmarshal
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0
		}
		b = b[n:]
	}
	return id
}

// encodeCommand encodes cmd for the raft log. The KV commands, whose
// messages hold only bytes and numbers, use the generated vtprotobuf code
// (no reflection: docs/performance.md, section 8); the others, which carry
// strings, go through protobuf-go, which refuses invalid UTF-8 that the
// generated code would let into the log and that replicas decoding with
// protobuf-go (older binaries) would then refuse to apply. Both produce the
// standard wire format.
func encodeCommand(cmd *raftcmdv1.Command) ([]byte, error) {
	switch cmd.Cmd.(type) {
	case *raftcmdv1.Command_Put, *raftcmdv1.Command_DeleteRange, *raftcmdv1.Command_Txn, *raftcmdv1.Command_Compaction:
		return cmd.MarshalVT()
	}
	return proto.Marshal(cmd)
}
