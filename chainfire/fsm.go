package chainfire

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	sm "github.com/lni/dragonboat/v4/statemachine"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/chainfire/internal/lease"
	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	"github.com/centra-cloud/centra/chainfire/internal/watch"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// commandVersion is the newest raftcmd encoding version this binary
// applies (proposers use the lowest one that knows the command: versionFor).
const commandVersion = authVersion

// fsm is the metadata shard's state machine: Chainfire's MVCC KV, leases and
// member attributes. It implements raftnode.Applier.
type fsm struct {
	db      *pebble.DB
	st      *mvcc.Store
	lessor  *lease.Lessor
	hub     *watch.Hub
	members memberTable
	log     *slog.Logger
	// handoffs holds the commands this process proposed and waits for.
	handoffs *handoffs

	rev       atomic.Int64 // newest committed revision, visible to readers
	compacted atomic.Int64
	alarms    atomic.Pointer[[]mvcc.Alarm] // active alarms, committed
	auth      atomic.Pointer[authState]    // users, roles, enabled; committed
	// onTokens receives, after the commit, the tokens assigned by logins
	// and the users whose tokens end (deleted, password changed, auth
	// disabled), in log order.
	onTokens func([]tokenEvent)

	// Owned by the apply goroutine: the live keys' metadata (set by Load)
	// and what the batch being applied changed.
	idx                      *mvcc.Index
	committedLogged          time.Time // last "Committed entry" line
	pending                  []mvcc.Event
	applyRev, applyCompacted int64
	applyAlarms              []mvcc.Alarm // replaced, never modified in place
	applyAuthState           *authState   // replaced, never modified in place
	tokenEvents              []tokenEvent

	compactMu   sync.Mutex
	compactWant int64 // revision the compactor must reach
	compactKick chan struct{}
}

var _ raftnode.Applier = (*fsm)(nil)

func newFSM(db *pebble.DB, ks raftnode.Keyspace, lessor *lease.Lessor, log *slog.Logger) *fsm {
	f := &fsm{
		db:          db,
		st:          mvcc.New(ks.Key(nil)),
		lessor:      lessor,
		log:         log,
		handoffs:    newHandoffs(),
		compactKick: make(chan struct{}, 1),
	}
	f.members = memberTable{st: f.st}
	f.alarms.Store(&[]mvcc.Alarm{})
	f.auth.Store(emptyAuth)
	f.applyAuthState = emptyAuth
	f.hub = watch.NewHub(func(from, to int64, max int, withPrev bool) ([]mvcc.Event, int64, error) {
		return f.st.Events(f.db, from, to, max, withPrev)
	})
	return f
}

// Load rebuilds the in-memory state (revision counters, leases, watch hub)
// from pebble.
func (f *fsm) Load(r pebble.Reader) error {
	meta, err := f.st.LoadMeta(r)
	if err != nil {
		return err
	}
	leases := map[int64]int64{}
	if err := f.st.Leases(r, func(id, ttl int64) { leases[id] = ttl }); err != nil {
		return err
	}
	alarms, err := f.st.Alarms(r)
	if err != nil {
		return err
	}
	auth, err := loadAuth(f.st, r)
	if err != nil {
		return err
	}
	idx, err := f.st.LoadIndex(r, meta.Revision)
	if err != nil {
		return err
	}
	f.idx = idx
	f.rev.Store(meta.Revision)
	f.compacted.Store(meta.Compacted)
	f.applyRev, f.applyCompacted, f.applyAlarms = meta.Revision, meta.Compacted, alarms
	f.alarms.Store(&alarms)
	f.applyAuthState = auth
	f.auth.Store(auth)
	f.lessor.Reset(leases)
	f.hub.Reset(meta.Revision, meta.Compacted)
	if meta.Compacted > meta.Physical {
		f.requestCompaction(meta.Compacted)
	}
	return nil
}

// committedEvery is how often Apply logs its progress ("Committed entry,
// index=N", the runbook's healthy-operation line): the first batch after
// start, then at most once per period.
const committedEvery = 10 * time.Second

// Apply applies committed commands into the raft batch b.
func (f *fsm) Apply(b *pebble.Batch, entries []sm.Entry) error {
	rev, compacted := f.rev.Load(), f.compacted.Load()
	startRev, startCompacted := rev, compacted
	for i := range entries {
		// A command this process proposed is applied from the proposer's
		// own message and its result handed over in memory.
		p := f.handoffs.find(entries[i].Cmd)
		var cmd *raftcmdv1.Command
		var resp proto.Message
		var err error
		if p != nil {
			cmd = p.cmd
		} else {
			cmd = new(raftcmdv1.Command)
			if uerr := cmd.UnmarshalVT(entries[i].Cmd); uerr != nil || cmd.Version > commandVersion {
				err = fmt.Errorf("%w: entry %d (version %d)", ErrBadCommand, entries[i].Index, cmd.Version)
			}
		}
		if err == nil {
			v := view{st: f.st, r: b, rev: rev, compacted: compacted}
			resp, rev, compacted, err = f.applyOne(v, b, cmd)
		}
		if err != nil {
			code, ok := applyErrorCode(translate(err))
			if !ok {
				return fmt.Errorf("chainfire: apply entry %d: %w", entries[i].Index, err)
			}
			entries[i].Result = sm.Result{Value: code}
			continue
		}
		// Only the proposer's request reads a result: dragonboat completes
		// it from the apply on the replica that proposed it. Other
		// members' commands leave the Result empty.
		if p != nil {
			p.resp = resp
		}
	}
	if rev != startRev {
		if err := f.st.SetRevision(b, rev); err != nil {
			return err
		}
	}
	if compacted != startCompacted {
		if err := f.st.SetCompacted(b, compacted); err != nil {
			return err
		}
	}
	f.applyRev, f.applyCompacted = rev, compacted
	if n := len(entries); n > 0 && time.Since(f.committedLogged) >= committedEvery {
		f.committedLogged = time.Now()
		f.log.Info(fmt.Sprintf("Committed entry, index=%d", entries[n-1].Index))
	}
	return nil
}

// applyOne applies one command and returns its response and the new
// revision counters. Failures that are part of the command's semantics
// (apply errors) are checked before anything is written.
func (f *fsm) applyOne(v view, b *pebble.Batch, cmd *raftcmdv1.Command) (proto.Message, int64, int64, error) {
	if err := gate(f.applyAlarms, cmd); err != nil {
		return nil, v.rev, v.compacted, err
	}
	if cmd.AuthRevision != 0 && cmd.AuthRevision < f.applyAuthState.revision {
		// Permissions were checked before an auth change (etcd's check).
		return nil, v.rev, v.compacted, ErrAuthOldRevision
	}
	w := writer{view: v, txn: f.st.BeginApply(b, v.rev, f.idx, f.hub.WantPrev())}
	var resp proto.Message
	var hdr **etcdserverpb.ResponseHeader
	switch c := cmd.Cmd.(type) {
	case *raftcmdv1.Command_Put:
		if err := w.checkPut(c.Put); err != nil {
			return nil, v.rev, v.compacted, err
		}
		r, err := w.put(c.Put)
		if err != nil {
			return nil, v.rev, v.compacted, err
		}
		resp, hdr = r, &r.Header
	case *raftcmdv1.Command_DeleteRange:
		r, err := w.deleteRange(c.DeleteRange)
		if err != nil {
			return nil, v.rev, v.compacted, err
		}
		resp, hdr = r, &r.Header
	case *raftcmdv1.Command_Txn:
		if err := w.checkTxn(c.Txn); err != nil {
			return nil, v.rev, v.compacted, err
		}
		cmp := &w.view // etcd: every comparison sees the state before the txn
		if cmd.Version < nestedTxnVersion {
			cmp = nil
		}
		r, err := w.txnOps(c.Txn, cmp)
		if err != nil {
			return nil, v.rev, v.compacted, err
		}
		resp, hdr = r, &r.Header
	case *raftcmdv1.Command_Compaction:
		rev := c.Compaction.Revision
		if rev > v.rev {
			return nil, v.rev, v.compacted, ErrFutureRev
		}
		if rev <= v.compacted {
			return nil, v.rev, v.compacted, ErrCompacted
		}
		v.compacted = rev
		r := &etcdserverpb.CompactionResponse{Header: &etcdserverpb.ResponseHeader{}}
		resp, hdr = r, &r.Header
	case *raftcmdv1.Command_LeaseGrant:
		g := c.LeaseGrant
		if err := w.txn.GrantLease(g.ID, g.TTL); err != nil {
			return nil, v.rev, v.compacted, err
		}
		f.lessor.Granted(g.ID, g.TTL)
		r := &etcdserverpb.LeaseGrantResponse{Header: &etcdserverpb.ResponseHeader{}, ID: g.ID, TTL: g.TTL}
		resp, hdr = r, &r.Header
	case *raftcmdv1.Command_LeaseRevoke:
		if err := w.txn.RevokeLease(c.LeaseRevoke.ID); err != nil {
			return nil, v.rev, v.compacted, err
		}
		f.lessor.Revoked(c.LeaseRevoke.ID)
		r := &etcdserverpb.LeaseRevokeResponse{Header: &etcdserverpb.ResponseHeader{}}
		resp, hdr = r, &r.Header
	case *raftcmdv1.Command_LeaseExpire:
		// Expiry proposals may race with revokes: skip leases already gone.
		for _, id := range c.LeaseExpire.Ids {
			err := w.txn.RevokeLease(id)
			if err != nil && !errors.Is(err, mvcc.ErrLeaseNotFound) {
				return nil, v.rev, v.compacted, err
			}
			f.lessor.Revoked(id)
		}
		r := &etcdserverpb.LeaseRevokeResponse{Header: &etcdserverpb.ResponseHeader{}}
		resp, hdr = r, &r.Header
	case *raftcmdv1.Command_MemberAttributes:
		m, err := f.members.publish(b, c.MemberAttributes)
		if err != nil {
			return nil, v.rev, v.compacted, err
		}
		resp = m
	case *raftcmdv1.Command_MemberAdd:
		m, err := f.members.add(b, c.MemberAdd)
		if err != nil {
			return nil, v.rev, v.compacted, err
		}
		resp = m
	case *raftcmdv1.Command_MemberRemove:
		m, err := f.members.remove(b, c.MemberRemove.NodeId)
		if err != nil {
			return nil, v.rev, v.compacted, err
		}
		resp = m
	case *raftcmdv1.Command_SysTxn:
		ok, err := f.applySysTxn(b, c.SysTxn)
		if err != nil {
			return nil, v.rev, v.compacted, err
		}
		resp = &raftcmdv1.SysTxnResult{Succeeded: ok}
	case *raftcmdv1.Command_Alarm:
		r, err := f.applyAlarm(b, c.Alarm)
		if err != nil {
			return nil, v.rev, v.compacted, err
		}
		resp, hdr = r, &r.Header
	case *raftcmdv1.Command_Auth:
		r, err := f.applyAuth(b, c.Auth)
		if err != nil {
			return nil, v.rev, v.compacted, err
		}
		resp, hdr = r, &r.Header
	case *raftcmdv1.Command_MemberPromote:
		m, err := f.members.promote(b, c.MemberPromote.NodeId)
		if err != nil {
			return nil, v.rev, v.compacted, err
		}
		resp = m
	default:
		return nil, v.rev, v.compacted, fmt.Errorf("%w: empty or unknown command", ErrBadCommand)
	}
	rev := w.txn.Revision()
	if hdr != nil {
		(*hdr).Revision = rev
	}
	f.pending = append(f.pending, w.txn.Events()...)
	return resp, rev, v.compacted, nil
}

// Applied publishes what the committed batch changed: the new revision to
// readers, the events to watchers, and compaction work to the compactor.
func (f *fsm) Applied(uint64) {
	f.rev.Store(f.applyRev)
	if a := f.applyAlarms; len(a) != len(*f.alarms.Load()) || !slices.Equal(a, *f.alarms.Load()) {
		f.alarms.Store(&a)
	}
	if f.applyCompacted != f.compacted.Swap(f.applyCompacted) {
		f.requestCompaction(f.applyCompacted)
	}
	if a := f.applyAuthState; a != f.auth.Load() {
		f.auth.Store(a)
	}
	if len(f.tokenEvents) > 0 && f.onTokens != nil {
		f.onTokens(f.tokenEvents)
	}
	f.tokenEvents = nil
	f.hub.Publish(f.applyRev, f.applyCompacted, f.pending)
	f.pending = nil
}

// view returns a read view on the committed state.
func (f *fsm) view() view {
	return view{st: f.st, r: f.db, rev: f.rev.Load(), compacted: f.compacted.Load()}
}

// applySysTxn applies a compare-and-swap transaction on the system keyspace.
func (f *fsm) applySysTxn(b *pebble.Batch, t *raftcmdv1.SysTxn) (bool, error) {
	for _, c := range t.Compares {
		cur, err := f.st.SysGet(b, c.Key)
		if err != nil {
			return false, err
		}
		if cur.Version != c.Version {
			return false, nil
		}
	}
	for _, p := range t.Puts {
		if err := f.st.SysPut(b, p.Key, p.Value); err != nil {
			return false, err
		}
	}
	for _, k := range t.Deletes {
		if err := f.st.SysDelete(b, k); err != nil {
			return false, err
		}
	}
	return true, nil
}
