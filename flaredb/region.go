package flaredb

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/lni/dragonboat/v4/statemachine"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/flaredb/internal/keys"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/flaredb/raftcmd/v1"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// Raft log encoding versions (raftcmd.proto). A replica refuses an entry
// of a version newer than commandVersion, the newest it applies; a
// proposer stamps each command with the lowest version that knows it
// (versionFor), so replicas of an older binary keep applying every other
// command during a rolling upgrade:
//
//	1: Write, DeleteRange, CompareAndSwap, Split
//	2: ChangePeer (PD's membership steps)
const (
	changePeerVersion = 2
	commandVersion    = changePeerVersion
)

// versionFor is the lowest command version that knows cmd.
func versionFor(cmd *raftcmdv1.Command) uint32 {
	if _, ok := cmd.Cmd.(*raftcmdv1.Command_ChangePeer); ok {
		return changePeerVersion
	}
	return 1
}

// Result codes of applied commands (statemachine.Result.Value). Data holds
// an encoded raftcmdv1.Result for every code but resultOK of a plain write.
const (
	resultOK uint64 = iota
	// resultEpochNotMatch: the command's epoch is not the region's.
	resultEpochNotMatch
	// resultKeyNotInRegion: a key lies outside the region's range.
	resultKeyNotInRegion
	// resultCASFailed: CompareAndSwap's comparison failed.
	resultCASFailed
	// resultInvalid: the command cannot be applied (bad split key, unknown
	// version); Data's message says why.
	resultInvalid
)

// descriptorKey is the data-subspace key (under the region's shard prefix)
// of the region descriptor, a meta.v1.Region.
var descriptorKey = []byte("region")

// region is one replica of a FlareDB region: the raftnode.RangeApplier
// behind the shard's RangeStateMachine. Its descriptor (range, epoch,
// peers) changes only in Apply and Load; readers take it with desc().
type region struct {
	id     uint64
	peerID uint64 // this store's peer (the replica ID it runs as)
	joined bool   // started without a descriptor, waiting for a snapshot
	db     *pebble.DB
	ks     raftnode.Keyspace
	cur    atomic.Pointer[metav1.Region]
	// onSplit is called, off the apply path's critical section, with the
	// region a committed split created.
	onSplit func(child *metav1.Region)
	// splits holds children created by the batch being applied, handed to
	// onSplit once the batch is committed (Applied).
	splits []*metav1.Region
	// onConfChange is called, like onSplit, once a batch that changed the
	// region's peers is committed (the leader reconciles raft membership).
	onConfChange func(id uint64)
	confChanged  bool
	// onUninitializedApply reports entries that reached a replica without a
	// descriptor (a bug or a log not compacted: see DESIGN.md).
	onUninitializedApply func(id uint64, n int)
	// onLoad is called when the replica first has a descriptor: when it
	// opens with one (a restart, a split-born replica) or, for a replica
	// that joined without one, with its first snapshot (joined says which).
	onLoad func(id uint64, joined bool)
	// working is set while the leader's membership work runs (leader.go).
	working atomic.Bool
	// compacted is set once this replica, leading, has compacted its log
	// past entry 1 (new replicas then catch up by snapshot).
	compacted atomic.Bool
	// applyDur observes the time to apply a batch of entries.
	applyDur func(time.Duration)
	applyAt  time.Time
	mu       sync.Mutex // guards splits between Apply and Applied
	// writes counts applied entries; checked is its value at the last
	// split check (split loop only), so unchanged regions are not walked.
	writes  atomic.Uint64
	checked uint64
	// diskLow are the stores of this region's replicas short of disk
	// space, as PD's answer to this replica's last region heartbeat (as
	// leader) listed them: writes that add data are refused meanwhile.
	diskLow atomic.Pointer[[]uint64]
}

var _ raftnode.RangeApplier = (*region)(nil)

// desc returns the current descriptor, or nil before the replica has one
// (never for a started region: the descriptor is written before its shard
// starts).
func (r *region) desc() *metav1.Region { return r.cur.Load() }

// uninitializedBounds is the data range of a replica without a descriptor:
// non-empty, as RangeStateMachine requires, and holding no data key (every
// data key is longer than the tag).
var uninitializedBounds = [2][]byte{{'d'}, {'d', 0}}

// Bounds implements raftnode.RangeApplier: the region's data range.
func (r *region) Bounds() (lower, upper []byte) {
	d := r.desc()
	if d == nil {
		return uninitializedBounds[0], uninitializedBounds[1]
	}
	return keys.DataRange(d.GetStartKey(), d.GetEndKey())
}

// Load implements raftnode.RangeApplier: it reads the descriptor. A
// replica that joined the region has none until its first snapshot
// (uninitialized: desc() is nil, it serves nothing).
func (r *region) Load(rd pebble.Reader) error {
	d, err := readDescriptor(rd, r.ks)
	if err != nil {
		return err
	}
	if d != nil {
		if old := r.cur.Swap(d); old == nil && r.onLoad != nil {
			go r.onLoad(r.id, r.joined)
		}
	}
	return nil
}

// readDescriptor returns the descriptor stored under ks, or nil.
func readDescriptor(rd pebble.Reader, ks raftnode.Keyspace) (*metav1.Region, error) {
	v, closer, err := rd.Get(ks.Key(descriptorKey))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	d := &metav1.Region{}
	if err := proto.Unmarshal(v, d); err != nil {
		return nil, fmt.Errorf("flaredb: region %d: corrupt descriptor: %w", ks.ShardID(), err)
	}
	return d, nil
}

// writeDescriptor stages d under its region's shard prefix.
func writeDescriptor(b *pebble.Batch, d *metav1.Region) error {
	v, err := proto.Marshal(d)
	if err != nil {
		return err
	}
	return b.Set(raftnode.ShardKeyspace(d.GetId()).Key(descriptorKey), v, nil)
}

// Lookup implements raftnode.RangeApplier. Reads go to pebble directly once
// raftnode.Read returned (the applied index then covers the read index);
// the query only fetches the descriptor in effect.
func (r *region) Lookup(any) (any, error) { return r.desc(), nil }

// Applied implements raftnode.RangeApplier: it hands committed splits to
// onSplit without blocking the apply loop.
func (r *region) Applied(uint64) {
	if r.applyDur != nil {
		r.applyDur(time.Since(r.applyAt))
	}
	r.mu.Lock()
	splits, changed := r.splits, r.confChanged
	r.splits, r.confChanged = nil, false
	r.mu.Unlock()
	for _, c := range splits {
		if r.onSplit != nil {
			go r.onSplit(c)
		}
	}
	if changed && r.onConfChange != nil {
		go r.onConfChange(r.id)
	}
}

// Apply implements raftnode.RangeApplier. Every command is checked against
// the descriptor as it is at that entry (a split earlier in the batch
// already changed it); refusals are results, never errors.
func (r *region) Apply(b *pebble.Batch, entries []statemachine.Entry) error {
	r.applyAt = time.Now()
	d := r.desc()
	if d == nil {
		// Only a snapshot may initialize a joined replica (DESIGN.md); log
		// entries reaching it mean the leader replayed a log from before
		// the region's data existed. Refuse them rather than apply them to
		// missing data.
		for i := range entries {
			entries[i].Result = refusal(resultInvalid, &raftcmdv1.Result{Message: fmt.Sprintf("region %d replica has no descriptor (joined without a snapshot)", r.id)})
		}
		if r.onUninitializedApply != nil {
			r.onUninitializedApply(r.id, len(entries))
		}
		return nil
	}
	for i := range entries {
		cmd := &raftcmdv1.Command{}
		if err := proto.Unmarshal(entries[i].Cmd, cmd); err != nil {
			entries[i].Result = refusal(resultInvalid, &raftcmdv1.Result{Message: "undecodable command: " + err.Error()})
			continue
		}
		res, next, err := r.apply(b, d, cmd)
		if err != nil {
			return err
		}
		entries[i].Result = res
		if next != nil {
			d = next
		}
	}
	if d != r.desc() {
		r.cur.Store(d)
	}
	r.writes.Add(uint64(len(entries)))
	return nil
}

// refusal encodes a refused command's result.
func refusal(code uint64, res *raftcmdv1.Result) statemachine.Result {
	data, _ := proto.Marshal(res)
	return statemachine.Result{Value: code, Data: data}
}

// apply applies one command; next is the new descriptor after a split.
func (r *region) apply(b *pebble.Batch, d *metav1.Region, cmd *raftcmdv1.Command) (res statemachine.Result, next *metav1.Region, err error) {
	if v := cmd.GetVersion(); v == 0 || v > commandVersion {
		return refusal(resultInvalid, &raftcmdv1.Result{Message: fmt.Sprintf("command version %d is not supported (this binary applies up to %d); upgrade this store", v, commandVersion)}), nil, nil
	}
	if cmd.GetEpoch().GetVersion() != d.GetRegionEpoch().GetVersion() {
		return refusal(resultEpochNotMatch, &raftcmdv1.Result{Region: d}), nil, nil
	}
	switch c := cmd.Cmd.(type) {
	case *raftcmdv1.Command_Write:
		for _, m := range c.Write.GetMutations() {
			if !keys.InRange(m.GetKey(), d.GetStartKey(), d.GetEndKey()) {
				return refusal(resultKeyNotInRegion, &raftcmdv1.Result{Region: d, Key: m.GetKey()}), nil, nil
			}
		}
		for _, m := range c.Write.GetMutations() {
			if err := mutate(b, m); err != nil {
				return res, nil, err
			}
		}
		return statemachine.Result{Value: resultOK}, nil, nil
	case *raftcmdv1.Command_DeleteRange:
		s, e, ok := keys.Clamp(c.DeleteRange.GetStartKey(), c.DeleteRange.GetEndKey(), d.GetStartKey(), d.GetEndKey())
		if ok {
			lo, hi := keys.DataRange(s, e)
			if err := b.DeleteRange(lo, hi, nil); err != nil {
				return res, nil, err
			}
		}
		return statemachine.Result{Value: resultOK}, nil, nil
	case *raftcmdv1.Command_CompareAndSwap:
		return r.applyCAS(b, d, c.CompareAndSwap)
	case *raftcmdv1.Command_Split:
		return r.applySplit(b, d, cmd.GetEpoch(), c.Split)
	case *raftcmdv1.Command_ChangePeer:
		return r.applyChangePeer(b, d, cmd.GetEpoch(), c.ChangePeer)
	default:
		return refusal(resultInvalid, &raftcmdv1.Result{Message: "unknown command; upgrade this store"}), nil, nil
	}
}

func mutate(b *pebble.Batch, m *raftcmdv1.Mutation) error {
	if m.GetDelete() {
		return b.Delete(keys.Data(m.GetKey()), nil)
	}
	return b.Set(keys.Data(m.GetKey()), m.GetValue(), nil)
}

func (r *region) applyCAS(b *pebble.Batch, d *metav1.Region, c *raftcmdv1.CompareAndSwap) (statemachine.Result, *metav1.Region, error) {
	m := c.GetMutation()
	if !keys.InRange(m.GetKey(), d.GetStartKey(), d.GetEndKey()) {
		return refusal(resultKeyNotInRegion, &raftcmdv1.Result{Region: d, Key: m.GetKey()}), nil, nil
	}
	cur := &raftcmdv1.Result{}
	v, closer, err := b.Get(keys.Data(m.GetKey()))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		cur.PreviousNotExist = true
	case err != nil:
		return statemachine.Result{}, nil, err
	default:
		cur.PreviousValue = bytes.Clone(v)
		closer.Close()
	}
	match := cur.PreviousNotExist == c.GetPreviousNotExist() &&
		(c.GetPreviousNotExist() || bytes.Equal(cur.PreviousValue, c.GetPreviousValue()))
	if !match {
		return refusal(resultCASFailed, cur), nil, nil
	}
	if err := mutate(b, m); err != nil {
		return statemachine.Result{}, nil, err
	}
	data, _ := proto.Marshal(cur)
	return statemachine.Result{Value: resultOK, Data: data}, nil, nil
}

// applySplit shrinks the region to [start, split_key) and creates the new
// region [split_key, end) on the same stores: its descriptor goes under its
// own shard prefix in this batch (unless this store already has one, from a
// replica started otherwise), and after commit onSplit starts its shard.
// Data stays where it is: both regions index the same store-wide keyspace.
func (r *region) applySplit(b *pebble.Batch, d *metav1.Region, epoch *metav1.RegionEpoch, sp *raftcmdv1.Split) (statemachine.Result, *metav1.Region, error) {
	key := sp.GetSplitKey()
	switch {
	case epoch.GetConfVer() != d.GetRegionEpoch().GetConfVer():
		return refusal(resultEpochNotMatch, &raftcmdv1.Result{Region: d}), nil, nil
	case !keys.InRange(key, d.GetStartKey(), d.GetEndKey()) || bytes.Equal(key, d.GetStartKey()):
		return refusal(resultInvalid, &raftcmdv1.Result{Region: d, Key: key, Message: "split key is not strictly inside the region"}), nil, nil
	case len(sp.GetNewPeerIds()) != len(d.GetPeers()) || sp.GetNewRegionId() == 0:
		return refusal(resultInvalid, &raftcmdv1.Result{Region: d, Message: fmt.Sprintf("split needs a new region ID and %d new peer IDs, got %d", len(d.GetPeers()), len(sp.GetNewPeerIds()))}), nil, nil
	}
	parent := proto.Clone(d).(*metav1.Region)
	parent.EndKey = bytes.Clone(key)
	parent.RegionEpoch.Version++
	child := &metav1.Region{
		Id: sp.GetNewRegionId(), StartKey: bytes.Clone(key), EndKey: bytes.Clone(d.GetEndKey()),
		RegionEpoch: proto.Clone(parent.GetRegionEpoch()).(*metav1.RegionEpoch),
	}
	for i, p := range d.GetPeers() {
		child.Peers = append(child.Peers, &metav1.Peer{Id: sp.GetNewPeerIds()[i], StoreId: p.GetStoreId(), Role: p.GetRole()})
	}
	if err := writeDescriptor(b, parent); err != nil {
		return statemachine.Result{}, nil, err
	}
	existing, err := readDescriptor(b, raftnode.ShardKeyspace(child.GetId()))
	if err != nil {
		return statemachine.Result{}, nil, err
	}
	if existing == nil {
		if err := writeDescriptor(b, child); err != nil {
			return statemachine.Result{}, nil, err
		}
		r.mu.Lock()
		r.splits = append(r.splits, child)
		r.mu.Unlock()
	}
	data, _ := proto.Marshal(&raftcmdv1.Result{Region: parent, NewRegion: child})
	return statemachine.Result{Value: resultOK, Data: data}, parent, nil
}

// applyChangePeer changes the region's peer set (epoch-checked like a
// split) and bumps conf_ver. Invalid changes are refused with a message;
// dragonboat's membership is reconciled by the leader after the commit.
func (r *region) applyChangePeer(b *pebble.Batch, d *metav1.Region, epoch *metav1.RegionEpoch, cp *raftcmdv1.ChangePeer) (statemachine.Result, *metav1.Region, error) {
	if epoch.GetConfVer() != d.GetRegionEpoch().GetConfVer() {
		return refusal(resultEpochNotMatch, &raftcmdv1.Result{Region: d}), nil, nil
	}
	next, err := changePeers(d, cp.GetChangeType(), cp.GetPeer())
	if err != nil {
		return refusal(resultInvalid, &raftcmdv1.Result{Region: d, Message: err.Error()}), nil, nil
	}
	if err := writeDescriptor(b, next); err != nil {
		return statemachine.Result{}, nil, err
	}
	r.mu.Lock()
	r.confChanged = true
	r.mu.Unlock()
	data, _ := proto.Marshal(&raftcmdv1.Result{Region: next})
	return statemachine.Result{Value: resultOK, Data: data}, next, nil
}

// changePeers returns d with the change applied and conf_ver + 1, or why
// the change is invalid for d.
func changePeers(d *metav1.Region, t raftcmdv1.ChangeType, p *metav1.Peer) (*metav1.Region, error) {
	if p.GetId() == 0 || p.GetStoreId() == 0 {
		return nil, fmt.Errorf("peer needs an id and a store_id, got %v", p)
	}
	next := proto.Clone(d).(*metav1.Region)
	next.RegionEpoch.ConfVer++
	i := slices.IndexFunc(next.Peers, func(q *metav1.Peer) bool { return q.GetId() == p.GetId() })
	switch t {
	case raftcmdv1.ChangeType_CHANGE_TYPE_ADD_LEARNER:
		if i >= 0 {
			return nil, fmt.Errorf("peer %d is already a peer of region %d", p.GetId(), d.GetId())
		}
		if slices.ContainsFunc(next.Peers, func(q *metav1.Peer) bool { return q.GetStoreId() == p.GetStoreId() }) {
			return nil, fmt.Errorf("store %d already holds a peer of region %d", p.GetStoreId(), d.GetId())
		}
		next.Peers = append(next.Peers, &metav1.Peer{Id: p.GetId(), StoreId: p.GetStoreId(), Role: metav1.PeerRole_PEER_ROLE_LEARNER})
	case raftcmdv1.ChangeType_CHANGE_TYPE_PROMOTE_LEARNER:
		if i < 0 || next.Peers[i].GetRole() != metav1.PeerRole_PEER_ROLE_LEARNER || next.Peers[i].GetStoreId() != p.GetStoreId() {
			return nil, fmt.Errorf("peer %d on store %d is not a learner of region %d", p.GetId(), p.GetStoreId(), d.GetId())
		}
		next.Peers[i].Role = metav1.PeerRole_PEER_ROLE_VOTER_UNSPECIFIED
	case raftcmdv1.ChangeType_CHANGE_TYPE_REMOVE_PEER:
		if i < 0 || next.Peers[i].GetStoreId() != p.GetStoreId() {
			return nil, fmt.Errorf("peer %d on store %d is not a peer of region %d", p.GetId(), p.GetStoreId(), d.GetId())
		}
		next.Peers = slices.Delete(next.Peers, i, i+1)
		if !slices.ContainsFunc(next.Peers, isVoter) {
			return nil, fmt.Errorf("peer %d is the last voter of region %d", p.GetId(), d.GetId())
		}
	default:
		return nil, fmt.Errorf("unknown change type %v; upgrade this store", t)
	}
	return next, nil
}

func isVoter(p *metav1.Peer) bool { return p.GetRole() == metav1.PeerRole_PEER_ROLE_VOTER_UNSPECIFIED }
