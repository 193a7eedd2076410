package flaredb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/flaredb/internal/keys"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/flaredb/raftcmd/v1"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// schedPD is an in-memory PD for in-process store clusters: it keeps what
// stores and region leaders report (dropping older region views, as PD
// does) and answers region heartbeats with the step a test set for the
// region, on every heartbeat until the test clears it (PD's resend). The
// stores, raft and pebble under test are real.
type schedPD struct {
	mu           sync.Mutex
	stores       map[uint64]*metav1.Store
	storeRegions map[uint64][]uint64
	regions      map[uint64]*pdv1.RegionWithLeader
	pending      map[uint64][]*metav1.Peer
	steps        map[uint64]*pdv1.RegionHeartbeatResponse
	nextID       uint64
}

func newSchedPD(first *metav1.Region) *schedPD {
	return &schedPD{
		stores: map[uint64]*metav1.Store{}, storeRegions: map[uint64][]uint64{}, pending: map[uint64][]*metav1.Peer{},
		regions: map[uint64]*pdv1.RegionWithLeader{first.GetId(): {Region: first}},
		steps:   map[uint64]*pdv1.RegionHeartbeatResponse{}, nextID: 1000,
	}
}

func (f *schedPD) PutStore(_ context.Context, s *metav1.Store) (*metav1.Store, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stores[s.GetId()] = proto.Clone(s).(*metav1.Store)
	return s, nil
}

func (f *schedPD) StoreHeartbeat(_ context.Context, st *pdv1.StoreStats, s *metav1.Store) (*pdv1.StoreHeartbeatResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stores[s.GetId()] = proto.Clone(s).(*metav1.Store)
	f.storeRegions[st.GetStoreId()] = slices.Clone(st.GetRegionIds())
	return &pdv1.StoreHeartbeatResponse{}, nil
}

func (f *schedPD) GetStore(_ context.Context, id uint64) (*pdv1.GetStoreResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stores[id]
	if s == nil {
		return nil, fmt.Errorf("store %d not registered yet", id)
	}
	return &pdv1.GetStoreResponse{Store: proto.Clone(s).(*metav1.Store)}, nil
}

func (f *schedPD) ScanRegions(context.Context, []byte, []byte, int32) ([]*pdv1.RegionWithLeader, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*pdv1.RegionWithLeader
	for _, r := range f.regions {
		out = append(out, proto.Clone(r).(*pdv1.RegionWithLeader))
	}
	slices.SortFunc(out, func(a, b *pdv1.RegionWithLeader) int {
		return bytes.Compare(a.GetRegion().GetStartKey(), b.GetRegion().GetStartKey())
	})
	return out, nil
}

func (f *schedPD) AskSplit(_ context.Context, r *metav1.Region) (uint64, []uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	newID := f.alloc()
	var peers []uint64
	for range r.GetPeers() {
		peers = append(peers, f.alloc())
	}
	return newID, peers, nil
}

func (f *schedPD) alloc() uint64 { f.nextID++; return f.nextID }

func (f *schedPD) HeartbeatRegion(_ context.Context, req *pdv1.RegionHeartbeatRequest) (*pdv1.RegionHeartbeatResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := req.GetRegion()
	resp := &pdv1.RegionHeartbeatResponse{RegionId: d.GetId(), RegionEpoch: d.GetRegionEpoch()}
	if old := f.regions[d.GetId()]; old != nil {
		oe, ne := old.GetRegion().GetRegionEpoch(), d.GetRegionEpoch()
		if ne.GetVersion() < oe.GetVersion() || ne.GetConfVer() < oe.GetConfVer() {
			resp.Stale = true
			return resp, nil
		}
	}
	f.regions[d.GetId()] = &pdv1.RegionWithLeader{Region: proto.Clone(d).(*metav1.Region), Leader: proto.Clone(req.GetLeader()).(*metav1.Peer)}
	f.pending[d.GetId()] = req.GetPendingPeers()
	if st := f.steps[d.GetId()]; st != nil {
		return proto.Clone(st).(*pdv1.RegionHeartbeatResponse), nil
	}
	return resp, nil
}

// region returns PD's view of region id.
func (f *schedPD) region(id uint64) (*metav1.Region, *metav1.Peer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.regions[id]
	return proto.Clone(r.GetRegion()).(*metav1.Region), r.GetLeader()
}

// setStep makes PD answer region id's heartbeats with step (nil: none),
// computed for the region's epoch PD knows now.
func (f *schedPD) setStep(id uint64, step *pdv1.RegionHeartbeatResponse) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if step == nil {
		delete(f.steps, id)
		return
	}
	step.RegionId = id
	step.RegionEpoch = proto.Clone(f.regions[id].GetRegion().GetRegionEpoch()).(*metav1.RegionEpoch)
	f.steps[id] = step
}

// lists says whether store's last heartbeat listed region id.
func (f *schedPD) lists(store, id uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.storeRegions[store], id)
}

// pendingPeers is PD's pending-peer count of region id: peers the leader
// reports pending plus peers whose store does not list the region.
func (f *schedPD) pendingPeers(id uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.pending[id])
	for _, p := range f.regions[id].GetRegion().GetPeers() {
		if !slices.Contains(f.storeRegions[p.GetStoreId()], id) {
			n++
		}
	}
	return n
}

// testStore is one in-process store: its own raft node, state DB and dirs.
type testStore struct {
	id       uint64
	dir      string
	raftAddr string
	node     *raftnode.Node
	db       *pebble.DB
	s        *Store
	cancel   context.CancelFunc
	done     chan struct{}
}

type testCluster struct {
	t      *testing.T
	pd     *schedPD
	stores map[uint64]*testStore
	logger *slog.Logger
	opts   []func(*StoreConfig) // applied to every store's config
}

func testLogger() *slog.Logger {
	if os.Getenv("FLAREDB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newTestCluster starts n stores; region 1 (whole key space) has peers
// 101..103 on stores 1..3.
func newTestCluster(t *testing.T, n int, opts ...func(*StoreConfig)) *testCluster {
	first := &metav1.Region{Id: 1, RegionEpoch: &metav1.RegionEpoch{ConfVer: 1, Version: 1},
		Peers: []*metav1.Peer{{Id: 101, StoreId: 1}, {Id: 102, StoreId: 2}, {Id: 103, StoreId: 3}}}
	c := &testCluster{t: t, pd: newSchedPD(first), stores: map[uint64]*testStore{}, logger: testLogger(), opts: opts}
	for id := uint64(1); id <= uint64(n); id++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		ts := &testStore{id: id, dir: t.TempDir(), raftAddr: addr}
		c.stores[id] = ts
		c.start(ts)
	}
	t.Cleanup(func() {
		for _, ts := range c.stores {
			c.stop(ts)
		}
	})
	return c
}

func (c *testCluster) start(ts *testStore) {
	t := c.t
	logger := c.logger.With("test_store", ts.id)
	node, err := raftnode.New(raftnode.Config{
		NodeHostDir: filepath.Join(ts.dir, "raft"), RaftAddress: ts.raftAddr, DeploymentID: 9,
		RTTMillisecond: 20, ElectionRTT: 10, HeartbeatRTT: 1, Logger: logger, LogLevel: slog.LevelWarn,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	db, err := raftnode.OpenStateDB(filepath.Join(ts.dir, "state"), nil, logger, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := StoreConfig{
		ID: ts.id, Address: fmt.Sprintf("127.0.0.1:%d", 20000+ts.id), PeerAddress: ts.raftAddr, DataDir: ts.dir,
		PD: c.pd, Logger: logger, Node: node, DB: db,
		HeartbeatInterval: 200 * time.Millisecond, RegionHeartbeatInterval: 200 * time.Millisecond, PeerCheckInterval: 200 * time.Millisecond,
		Split: SplitConfig{MaxSize: 1 << 40, SplitSize: 1 << 39, MaxKeys: 1 << 40, SplitKeys: 1 << 39, CheckInterval: time.Hour},
	}
	for _, o := range c.opts {
		o(&cfg)
	}
	s, err := NewStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.node, ts.db, ts.s, ts.cancel, ts.done = node, db, s, cancel, make(chan struct{})
	go func() {
		defer close(ts.done)
		if err := s.Run(ctx, func() {}); err != nil && ctx.Err() == nil {
			t.Errorf("store %d: %v", ts.id, err)
		}
	}()
}

// stop stops a store as a crash would leave it: the process's raft node and
// DB close without a leader transfer (kill -9 cannot be done in-process;
// what is durable is what raft and pebble synced).
func (c *testCluster) stop(ts *testStore) {
	if ts.s == nil {
		return
	}
	ts.cancel()
	<-ts.done
	ts.s.Close()
	ts.node.Close()
	ts.db.Close()
	ts.s = nil
}

func (c *testCluster) restart(ts *testStore) {
	c.stop(ts)
	c.start(ts)
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leader waits for PD to know region id's leader and returns its store.
func (c *testCluster) leader(id uint64) *testStore {
	c.t.Helper()
	var ts *testStore
	eventually(c.t, 20*time.Second, fmt.Sprintf("a leader of region %d", id), func() bool {
		_, l := c.pd.region(id)
		ts = c.stores[l.GetStoreId()]
		if ts == nil || ts.s == nil {
			return false
		}
		r := ts.s.regions.get(id)
		if r == nil {
			return false
		}
		_, _, self := ts.s.isLeader(r)
		return self
	})
	return ts
}

// put writes n keys prefix-i=v through region 1's leader.
func (c *testCluster) put(id uint64, prefix string, n int) {
	c.t.Helper()
	for i := 0; i < n; i += 50 {
		w := &raftcmdv1.Write{}
		for j := i; j < min(i+50, n); j++ {
			w.Mutations = append(w.Mutations, &raftcmdv1.Mutation{Key: keys.Encode("t", []byte(fmt.Sprintf("%s-%04d", prefix, j))), Value: []byte("v")})
		}
		for attempt := 0; ; attempt++ {
			ts := c.leader(id)
			r := ts.s.regions.get(id)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := ts.s.propose(ctx, r, &raftcmdv1.Command{Version: commandVersion, Epoch: r.desc().GetRegionEpoch(), Cmd: &raftcmdv1.Command_Write{Write: w}})
			cancel()
			if err == nil {
				break
			}
			if attempt > 20 {
				c.t.Fatalf("write to region %d: %v", id, err)
			}
		}
	}
}

// count counts the keys with prefix in store ts's pebble.
func count(t *testing.T, ts *testStore, prefix string) int {
	t.Helper()
	lo, hi := keys.DataRange(keys.Encode("t", []byte(prefix)), keys.Encode("t", []byte(prefix+"\xff")))
	return countRange(t, ts, lo, hi)
}

// dataKeys counts every data key in store ts's pebble.
func dataKeys(t *testing.T, ts *testStore) int {
	t.Helper()
	return countRange(t, ts, []byte{keys.DataTag}, []byte{keys.DataTag + 1})
}

func countRange(t *testing.T, ts *testStore, lo, hi []byte) int {
	t.Helper()
	it, err := ts.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}

func peerOn(d *metav1.Region, store uint64) *metav1.Peer {
	for _, p := range d.GetPeers() {
		if p.GetStoreId() == store {
			return p
		}
	}
	return nil
}

func changePeerStep(t pdv1.ConfChangeType, id, store uint64) *pdv1.RegionHeartbeatResponse {
	return &pdv1.RegionHeartbeatResponse{ChangePeer: &pdv1.ChangePeer{ChangeType: t, Peer: &metav1.Peer{Id: id, StoreId: store}}}
}

// runStep sets a step and waits until PD's view satisfies done, then
// clears it (PD's operator controller finishing the step).
func (c *testCluster) runStep(id uint64, step *pdv1.RegionHeartbeatResponse, what string, done func(d *metav1.Region, leader *metav1.Peer) bool) {
	c.t.Helper()
	c.pd.setStep(id, step)
	eventually(c.t, 60*time.Second, what, func() bool { return done(c.pd.region(id)) })
	c.pd.setStep(id, nil)
}

// TestMembershipSteps moves region 1 from stores 1-3 to stores 2-4 with
// PD's steps, driven by hand: add a learner on store 4 (it catches up by a
// snapshot), promote it, remove store 1's peer, transfer leadership to
// store 4; data stays readable and store 1 no longer holds the range.
func TestMembershipSteps(t *testing.T) {
	c := newTestCluster(t, 4)
	c.put(1, "a", 300)
	s4 := c.stores[4]

	c.runStep(1, changePeerStep(pdv1.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER_NODE, 104, 4), "learner 104 in PD's region", func(d *metav1.Region, _ *metav1.Peer) bool {
		p := peerOn(d, 4)
		return p != nil && p.GetRole() == metav1.PeerRole_PEER_ROLE_LEARNER && d.GetRegionEpoch().GetConfVer() == 2
	})
	eventually(t, 60*time.Second, "store 4's learner to apply the snapshot (pending peers 0)", func() bool {
		return c.pd.pendingPeers(1) == 0 && count(t, s4, "a") == 300
	})
	if sent, _ := c.leader(1).s.snaps.Totals(); sent == 0 {
		t.Fatal("the learner caught up without a snapshot stream from the leader")
	}
	if _, recv := s4.s.snaps.Totals(); recv != 1 {
		t.Fatalf("store 4 received %d snapshots, want 1", recv)
	}
	if joined, err := s4.s.hasLocal(joinedKey(1)); err != nil || !joined {
		t.Fatalf("store 4's learner has no restart-non-voting marker (%v)", err)
	}

	c.runStep(1, changePeerStep(pdv1.ConfChangeType_CONF_CHANGE_TYPE_ADD_NODE_UNSPECIFIED, 104, 4), "peer 104 promoted", func(d *metav1.Region, _ *metav1.Peer) bool {
		p := peerOn(d, 4)
		return p != nil && isVoter(p) && d.GetRegionEpoch().GetConfVer() == 3
	})
	c.waitMembership(1, []uint64{101, 102, 103, 104}, nil)
	eventually(t, 30*time.Second, "store 4 to drop its restart-non-voting marker after the promotion snapshot", func() bool {
		joined, err := s4.s.hasLocal(joinedKey(1))
		return err == nil && !joined
	})

	// Store 1 leads, then its peer is removed: the leader hands leadership
	// to another voter first, and that leader removes it.
	transfer := func(id, store uint64) {
		c.runStep(1, &pdv1.RegionHeartbeatResponse{TransferLeader: &pdv1.TransferLeader{Peer: &metav1.Peer{Id: id, StoreId: store}}},
			fmt.Sprintf("store %d to lead", store), func(_ *metav1.Region, l *metav1.Peer) bool { return l.GetId() == id })
	}
	transfer(101, 1)
	c.runStep(1, changePeerStep(pdv1.ConfChangeType_CONF_CHANGE_TYPE_REMOVE_NODE, 101, 1), "peer 101 removed", func(d *metav1.Region, _ *metav1.Peer) bool {
		return peerOn(d, 1) == nil && d.GetRegionEpoch().GetConfVer() == 4
	})
	c.waitMembership(1, []uint64{102, 103, 104}, nil)
	s1 := c.stores[1]
	eventually(t, 30*time.Second, "store 1 to destroy its replica and data", func() bool {
		d, err := readDescriptor(s1.db, raftnode.ShardKeyspace(1))
		return err == nil && d == nil && s1.s.regions.get(1) == nil && dataKeys(t, s1) == 0
	})
	transfer(104, 4)
	c.put(1, "b", 100)
	for _, id := range []uint64{2, 3, 4} {
		ts := c.stores[id]
		eventually(t, 30*time.Second, fmt.Sprintf("store %d to hold every key", id), func() bool {
			return count(t, ts, "a") == 300 && count(t, ts, "b") == 100
		})
	}
	if dataKeys(t, s1) != 0 {
		t.Fatal("store 1 got data back after its removal")
	}
	// Store 4's replica restarts (it was started non-voting: the join
	// marker is gone after its promotion snapshot, so it restarts a voter).
	c.restart(s4)
	c.put(1, "c", 10)
	eventually(t, 30*time.Second, "restarted store 4 to catch up", func() bool { return count(t, s4, "c") == 10 })
}

// waitMembership waits until region id's raft membership (read through its
// leader) has exactly these voters and learners.
func (c *testCluster) waitMembership(id uint64, voters, learners []uint64) {
	c.t.Helper()
	eventually(c.t, 30*time.Second, fmt.Sprintf("raft voters %v learners %v", voters, learners), func() bool {
		ts := c.leader(id)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m, err := ts.node.Membership(ctx, id)
		if err != nil {
			return false
		}
		return sameIDs(m.Nodes, voters) && sameIDs(m.NonVotings, learners)
	})
}

func sameIDs(m map[uint64]string, ids []uint64) bool {
	if len(m) != len(ids) {
		return false
	}
	for _, id := range ids {
		if _, ok := m[id]; !ok {
			return false
		}
	}
	return true
}

// TestMembershipConvergesAfterCrash crashes the leader between committing
// ADD_LEARNER to the descriptor and adding the learner to raft: the next
// leader finishes the step from the descriptor (PD's resent step is now
// stale), the learner catches up, and the crashed store rejoins.
func TestMembershipConvergesAfterCrash(t *testing.T) {
	c := newTestCluster(t, 4)
	c.put(1, "a", 200)
	crashed := make(chan uint64, 4)
	for _, ts := range c.stores {
		id := ts.id
		hook := func(ctx context.Context) {
			crashed <- id
			<-ctx.Done() // "dead" until the test stops the store
		}
		ts.s.testAfterChangePeer.Store(&hook)
	}
	c.pd.setStep(1, changePeerStep(pdv1.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER_NODE, 104, 4))
	var victim *testStore
	select {
	case id := <-crashed:
		victim = c.stores[id]
	case <-time.After(60 * time.Second):
		t.Fatal("the leader did not commit the ChangePeer")
	}
	c.stop(victim)
	for _, ts := range c.stores {
		if ts.s != nil {
			ts.s.testAfterChangePeer.Store(nil)
		}
	}
	eventually(t, 60*time.Second, "the next leader to add learner 104 and store 4 to apply its snapshot", func() bool {
		d, _ := c.pd.region(1)
		p := peerOn(d, 4)
		return p != nil && d.GetRegionEpoch().GetConfVer() == 2 && c.pd.pendingPeers(1) <= 1 && count(t, c.stores[4], "a") == 200
	})
	c.waitMembership(1, []uint64{101, 102, 103}, []uint64{104})
	// The resent step (conf_ver 1) is stale and changes nothing more.
	c.start(victim)
	c.put(1, "b", 50)
	eventually(t, 60*time.Second, "every store to hold every key and PD no pending peer", func() bool {
		for _, ts := range c.stores {
			if count(t, ts, "a") != 200 || count(t, ts, "b") != 50 {
				return false
			}
		}
		return c.pd.pendingPeers(1) == 0
	})
	if d, _ := c.pd.region(1); d.GetRegionEpoch().GetConfVer() != 2 {
		t.Fatalf("conf_ver %d after one step, want 2", d.GetRegionEpoch().GetConfVer())
	}
	c.pd.setStep(1, nil)
}

// TestSkippedSplitReplicaStarts: a store that was down while region 1
// split catches up on the parent by a snapshot (so it never applies the
// split) and starts the child replica it is a peer of from PD's view; the
// child catches up by its own snapshot and PD's pending peers return to 0.
func TestSkippedSplitReplicaStarts(t *testing.T) {
	c := newTestCluster(t, 3)
	c.put(1, "m", 100)
	s3 := c.stores[3]
	c.stop(s3)
	ld := c.leader(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := ld.s.regions.get(1)
	if err := ld.s.split(ctx, r, r.desc(), keys.Encode("t", []byte("m-0050"))); err != nil {
		t.Fatal(err)
	}
	childID := c.pd.nextID - 3 // the split allocated the region ID, then 3 peer IDs
	c.leader(childID)
	c.put(1, "a", 30)
	// The child applies no entry of its own before store 3 joins it (its
	// data came with the split): its snapshot must still carry it.
	// Compact the parent's log on every live replica, so store 3 must take
	// a snapshot of the parent (taken after the split).
	for _, ts := range []*testStore{c.stores[1], c.stores[2]} {
		c.put(1, "b", 1)
		if _, err := ts.node.CompactLog(ctx, 1); err != nil && !errors.Is(err, raftnode.ErrRejected) {
			t.Fatal(err)
		}
	}
	c.start(s3)
	eventually(t, 60*time.Second, "store 3 to run the child region from a snapshot", func() bool {
		cr := s3.s.regions.get(childID)
		return cr != nil && cr.desc() != nil && count(t, s3, "m") == 100 && count(t, s3, "a") == 30
	})
	c.put(childID, "z", 40)
	eventually(t, 30*time.Second, "store 3 to apply child writes", func() bool { return count(t, s3, "z") == 40 })
	eventually(t, 30*time.Second, "PD's pending peers to return to 0", func() bool {
		return c.pd.pendingPeers(1) == 0 && c.pd.pendingPeers(childID) == 0
	})
	// Store 3's replicas are full members: the child keeps working when
	// one other store is down.
	c.stop(c.stores[1])
	c.put(childID, "y", 10)
	eventually(t, 30*time.Second, "store 3 to apply new child writes", func() bool { return count(t, s3, "y") == 10 })
}

// TestSplitReportsChildAtOnce: every store that applies a split tells PD
// at once that it runs the child (a store heartbeat), not at its next
// HeartbeatInterval. PD counts a peer whose store does not list its region
// as pending, so under writes that split regions more often than the
// interval (10 s by default) pending peers never returned to 0 (issue 10's
// e2e: "pending_peers stuck at 7" long after every region was repaired).
func TestSplitReportsChildAtOnce(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *StoreConfig) { cfg.HeartbeatInterval = time.Hour })
	c.put(1, "m", 100)
	ld := c.leader(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := ld.s.regions.get(1)
	if err := ld.s.split(ctx, r, r.desc(), keys.Encode("t", []byte("m-0050"))); err != nil {
		t.Fatal(err)
	}
	childID := c.pd.nextID - 3 // the split allocated the region ID, then 3 peer IDs
	eventually(t, 30*time.Second, "every store to list the child region", func() bool {
		return c.pd.lists(1, childID) && c.pd.lists(2, childID) && c.pd.lists(3, childID)
	})
}

// TestSplitRegionStep: PD's split-region step splits the region once, at
// PD's key (USE_KEY) or where its data halves (HALFWAY); the region keeps
// its ID on the left side and its version moves, so the step, resent with
// the old epoch until PD sees that, never splits twice.
func TestSplitRegionStep(t *testing.T) {
	c := newTestCluster(t, 3)
	c.put(1, "m", 100)
	at := keys.Encode("t", []byte("m-0080"))
	c.runStep(1, &pdv1.RegionHeartbeatResponse{SplitRegion: &pdv1.SplitRegion{Policy: pdv1.SplitPolicy_SPLIT_POLICY_USE_KEY, Keys: [][]byte{at}}},
		"region 1 to split at m-0080", func(d *metav1.Region, _ *metav1.Peer) bool { return bytes.Equal(d.GetEndKey(), at) })
	// Region 1 holds m-0000..m-0079 now: halfway is m-0040.
	c.runStep(1, &pdv1.RegionHeartbeatResponse{SplitRegion: &pdv1.SplitRegion{}},
		"region 1 to split halfway", func(d *metav1.Region, _ *metav1.Peer) bool { return d.GetRegionEpoch().GetVersion() == 3 })
	d, _ := c.pd.region(1)
	if want := keys.Encode("t", []byte("m-0040")); !bytes.Equal(d.GetEndKey(), want) {
		t.Fatalf("halfway split of m-0000..m-0079 ended region 1 at %q, want %q", d.GetEndKey(), want)
	}
	if lo, hi := keys.DataRange(d.GetStartKey(), d.GetEndKey()); countRange(t, c.leader(1), lo, hi) != 40 {
		t.Fatalf("region 1 holds %d keys after the halfway split, want 40", countRange(t, c.leader(1), lo, hi))
	}
}
