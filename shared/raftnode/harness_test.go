package raftnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/lni/dragonboat/v4/statemachine"
)

// testShard is the shard the cluster tests replicate.
const testShard uint64 = 0

// kvApplier is the test Applier: a command "key=value" sets a data key and
// returns the entry index as Result.Value; Lookup takes a key (string) or
// countQuery. keys counts data keys and is rebuilt by Load, so a recovered
// snapshot shows up in it.
type kvApplier struct {
	ks      Keyspace
	db      *pebble.DB
	keys    atomic.Int64
	pending int64 // new keys in the batch being applied
	loads   atomic.Int64
	applied atomic.Uint64
	// firstApplied is the index of the first entry Apply saw.
	firstApplied atomic.Uint64
}

type countQuery struct{}

// countKeys counts the keys of r in [lower, upper).
func countKeys(r pebble.Reader, lower, upper []byte) (int64, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	var n int64
	for valid := it.First(); valid; valid = it.Next() {
		n++
	}
	return n, it.Close()
}

func (a *kvApplier) Load(r pebble.Reader) error {
	lower, upper := a.ks.Bounds()
	n, err := countKeys(r, lower, upper)
	if err != nil {
		return err
	}
	a.keys.Store(n)
	a.loads.Add(1)
	return nil
}

func (a *kvApplier) Apply(b *pebble.Batch, entries []statemachine.Entry) error {
	a.firstApplied.CompareAndSwap(0, entries[0].Index)
	for i := range entries {
		e := &entries[i]
		k, v, ok := bytes.Cut(e.Cmd, []byte("="))
		if !ok {
			return fmt.Errorf("malformed command %q", e.Cmd)
		}
		key := a.ks.Key(k)
		_, closer, err := b.Get(key)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			a.pending++
		case err != nil:
			return err
		default:
			closer.Close()
		}
		if err := b.Set(key, v, nil); err != nil {
			return err
		}
		e.Result = statemachine.Result{Value: e.Index}
	}
	return nil
}

func (a *kvApplier) Applied(index uint64) {
	a.keys.Add(a.pending)
	a.pending = 0
	a.applied.Store(index)
}

func (a *kvApplier) Lookup(query any) (any, error) {
	switch q := query.(type) {
	case countQuery:
		return a.keys.Load(), nil
	case string:
		v, closer, err := a.db.Get(a.ks.Key([]byte(q)))
		if errors.Is(err, pebble.ErrNotFound) {
			return "", nil
		}
		if err != nil {
			return nil, err
		}
		defer closer.Close()
		return string(v), nil
	default:
		return nil, fmt.Errorf("unknown query %T", query)
	}
}

// lockedBuffer collects a test's log output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger returns a logger into a buffer that is dumped if t fails, or
// always when RAFTNODE_TEST_LOGS is set.
func testLogger(t testing.TB) (*slog.Logger, *lockedBuffer) {
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("RAFTNODE_TEST_LOGS") != "" {
			out := buf.String()
			if len(out) > 20000 {
				out = "...\n" + out[len(out)-20000:]
			}
			t.Logf("logs:\n%s", out)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo})), buf
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testConfig is the Node config of the cluster tests: 20 ms ticks, so an
// election takes 200-400 ms.
func testConfig(logger *slog.Logger, dir, addr string) Config {
	return Config{
		NodeHostDir:    filepath.Join(dir, "raft"),
		RaftAddress:    addr,
		DeploymentID:   7,
		RTTMillisecond: 20,
		ElectionRTT:    10,
		HeartbeatRTT:   1,
		Logger:         logger,
		LogLevel:       slog.LevelInfo,
	}
}

// member is one in-process centra node of a test cluster.
type member struct {
	id     uint64
	addr   string
	dir    string
	node   *Node
	db     *pebble.DB
	app    *kvApplier // the latest state machine's applier
	events chan LeaderEvent
}

// cluster is a set of members, each with its own Node, dirs and port.
type cluster struct {
	t       testing.TB
	dir     string
	logger  *slog.Logger
	logs    *lockedBuffer
	tune    func(*Config)
	members map[uint64]*member
	// newSM, when set, builds the state machines instead of the default
	// DiskStateMachine over a kvApplier (m.app then stays nil).
	newSM func(m *member, db *pebble.DB, ks Keyspace) statemachine.IOnDiskStateMachine
}

func newCluster(t testing.TB, tune func(*Config)) *cluster {
	logger, logs := testLogger(t)
	// TempDir's removal is a cleanup too; taking the dir before registering
	// the members' shutdown makes the removal run after it (LIFO).
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, logger: logger, logs: logs, tune: tune, members: map[uint64]*member{}}
	t.Cleanup(func() {
		for _, m := range c.members {
			m.stop(t)
		}
	})
	return c
}

// bootstrap starts n members that form a new shard. Every Node listens
// before any replica starts: a replica sending to a port nobody listens on
// yet trips dragonboat's circuit breaker, which then drops messages to that
// peer for up to a second (a proposal forwarded meanwhile is lost and waits
// for its deadline).
func (c *cluster) bootstrap(n int) {
	initial := map[uint64]string{}
	for id := uint64(1); id <= uint64(n); id++ {
		m := c.add(id)
		initial[id] = m.addr
		c.open(m)
	}
	for id := uint64(1); id <= uint64(n); id++ {
		c.startShard(c.members[id], ShardConfig{ShardID: testShard, ReplicaID: id, InitialMembers: initial})
	}
}

// add creates a member with fresh dirs and port, not started.
func (c *cluster) add(id uint64) *member {
	m := &member{id: id, addr: freeAddr(c.t), dir: filepath.Join(c.dir, fmt.Sprintf("member%d", id))}
	c.members[id] = m
	return m
}

// start opens m's Node and state DB and starts its replica of testShard.
func (c *cluster) start(m *member, sc ShardConfig) {
	c.t.Helper()
	c.open(m)
	c.startShard(m, sc)
}

// open starts m's Node and opens its state DB.
func (c *cluster) open(m *member) {
	t := c.t
	t.Helper()
	cfg := testConfig(c.logger.With("member", m.id), m.dir, m.addr)
	if c.tune != nil {
		c.tune(&cfg)
	}
	node, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.events = make(chan LeaderEvent, 64)
	node.OnLeaderChange(func(ev LeaderEvent) {
		select {
		case m.events <- ev:
		default:
		}
	})
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	db, err := OpenStateDB(filepath.Join(m.dir, "state"), &pebble.Options{}, c.logger, 0)
	if err != nil {
		node.Close()
		t.Fatal(err)
	}
	m.node, m.db = node, db
}

// startShard starts m's replica of testShard.
func (c *cluster) startShard(m *member, sc ShardConfig) {
	t := c.t
	t.Helper()
	ks := ShardKeyspace(testShard)
	var err error
	if sc.StateAppliedIndex, err = ReadAppliedIndex(m.db, ks); err != nil {
		t.Fatal(err)
	}
	db := m.db
	err = m.node.StartShard(sc, func(shardID, replicaID uint64) statemachine.IOnDiskStateMachine {
		if c.newSM != nil {
			return c.newSM(m, db, ks)
		}
		m.app = &kvApplier{ks: ks, db: db}
		return NewDiskStateMachine(db, ks, m.app)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// stop closes m's Node, then its state DB (the documented order).
func (m *member) stop(t testing.TB) {
	if m.node == nil {
		return
	}
	if err := m.node.Close(); err != nil {
		t.Error(err)
	}
	if err := m.db.Close(); err != nil {
		t.Error(err)
	}
	m.node, m.db = nil, nil
}

// eventually polls cond every 10 ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// waitLeader waits until every running member agrees on one leader and
// returns it with its term.
func (c *cluster) waitLeader() (leader, term uint64) {
	c.t.Helper()
	eventually(c.t, 10*time.Second, "an agreed leader", func() bool {
		leader, term = 0, 0
		for _, m := range c.members {
			if m.node == nil {
				continue
			}
			id, tm, ok := m.node.Leader(testShard)
			if !ok || (leader != 0 && (id != leader || tm != term)) {
				return false
			}
			leader, term = id, tm
		}
		return leader != 0
	})
	return leader, term
}

// ctx returns a context with the given timeout, canceled at test end.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// propose sets key=value through m and returns the entry index.
func (c *cluster) propose(m *member, key, value string) uint64 {
	c.t.Helper()
	res, err := m.node.Propose(testCtx(c.t, 5*time.Second), testShard, []byte(key+"="+value))
	if err != nil {
		c.t.Fatalf("propose %s=%s via member %d: %v", key, value, m.id, err)
	}
	return res.Value
}

// logged reports whether the logs contain s.
func (c *cluster) logged(s string) bool { return strings.Contains(c.logs.String(), s) }

// waitRead waits until a linearizable read of key through m returns want.
// Right after a restart the replica may briefly know no leader: with 20 ms
// ticks its election timeout is shorter than dragonboat's reconnect backoff
// (up to 1 s), so such reads can fail with ErrNoLeader at first.
func (c *cluster) waitRead(m *member, key, want string) {
	c.t.Helper()
	eventually(c.t, 10*time.Second, fmt.Sprintf("reading %s=%s via member %d", key, want, m.id), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		v, err := m.node.Read(ctx, testShard, key)
		return err == nil && v == want
	})
}
