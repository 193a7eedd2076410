package chainfire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"
	"github.com/lni/dragonboat/v4"
	sm "github.com/lni/dragonboat/v4/statemachine"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/chainfire/internal/lease"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/chainfire/raftcmd/v1"
	"github.com/centra-cloud/centra/gen/centra/chainfire/v1/chainfirev1connect"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/shared/diskguard"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// Raft is what the server needs from the node's raft layer
// (*raftnode.Node implements it).
type Raft interface {
	Propose(ctx context.Context, shardID uint64, cmd []byte) (sm.Result, error)
	Read(ctx context.Context, shardID uint64, query any) (any, error)
	StaleRead(shardID uint64, query any) (any, error)
	Leader(shardID uint64) (leaderID, term uint64, ok bool)
	LocalVoters(shardID uint64) map[uint64]string
	Status(ctx context.Context, shardID uint64) (raftnode.Status, error)
	Membership(ctx context.Context, shardID uint64) (*dragonboat.Membership, error)
	AddReplica(ctx context.Context, shardID, replicaID uint64, addr string) error
	AddNonVoting(ctx context.Context, shardID, replicaID uint64, addr string) error
	RemoveReplica(ctx context.Context, shardID, replicaID uint64) error
	TransferLeader(ctx context.Context, shardID, targetReplicaID uint64) error
}

// Config configures a Server.
type Config struct {
	NodeID    uint64 // [node] id; also the etcd member ID
	ReplicaID uint64 // this node's replica ID in the metadata shard
	ClusterID uint64 // [cluster] id; the etcd cluster ID
	Name      string // [node] name
	// PeerURLs and ClientURLs are published in the member list (etcd's
	// member attributes): the raft address and the API URLs.
	PeerURLs   []string
	ClientURLs []string

	Raft     Raft
	DB       *pebble.DB
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// ClientTLS dials other members' APIs (lease requests are forwarded to
	// the leader); nil means plaintext HTTP/2.
	ClientTLS *tls.Config
	// RequestTimeout bounds requests whose client set no deadline
	// (default 5s, etcd's).
	RequestTimeout time.Duration
	// MinLeaseTTL is the smallest lease TTL granted, in seconds (etcd:
	// 1.5 election timeouts, rounded up).
	MinLeaseTTL int64
	// ElectionTimeout is raft's election timeout (default 1s). A member
	// without a leader for that long cancels require-leader streams.
	ElectionTimeout time.Duration
	// StartAppliedIndex is the metadata shard's applied index as the state
	// DB held it before the shard started (0 for a new member): a member
	// that starts far behind the leader logs its own catch-up from it.
	StartAppliedIndex uint64
	// CorruptCheckInterval is how often the leader compares every member's
	// HashKV with its own and raises CORRUPT on a mismatch (default 5
	// minutes; negative disables the check).
	CorruptCheckInterval time.Duration
	// DataDir is where Snapshot builds its file before streaming it
	// (default: the system's temporary directory).
	DataDir string
	// QuotaBackendBytes is the space quota of Chainfire's data on this
	// member (storage.quota_backend_bytes); 0 means none. Beyond it the
	// member raises the NOSPACE alarm and writes are refused.
	QuotaBackendBytes int64
	// DiskGuard watches the free space of the data directory's filesystem
	// (storage.min_free_bytes); while it is low the member raises the
	// NOSPACE alarm and clears it once space is back. nil: no guard.
	DiskGuard *diskguard.Guard
	// AuthTokenTTL is how long a simple token stays valid after its last
	// use (default 5 minutes, etcd's --auth-token-ttl).
	AuthTokenTTL time.Duration
}

// MaxLeaseTTL is the largest lease TTL, in seconds (etcd's limit).
const MaxLeaseTTL = 9_000_000_000

// maxRequestBytes is the largest encoded write (etcd's default, 1.5 MiB).
const maxRequestBytes = 1536 * 1024

// Server is Chainfire: the state machine of the metadata shard and the etcd
// v3 services on top of it.
type Server struct {
	cfg     Config
	fsm     *fsm
	lessor  *lease.Lessor
	log     *slog.Logger
	metrics *metrics
	fwd     *forwarder
	leader  *leaderMonitor
	lag     lagTracker
	tokens  *tokenStore
	icpts   []connect.Interceptor

	used atomic.Int64 // space Chainfire's data takes (spaceUsed), refreshed by monitorQuota
	// diskAlarm holds while this member's NOSPACE alarm is one it raised
	// for low disk space, which monitorDisk clears once space is back.
	diskAlarm atomic.Bool

	// memberMu serialises membership changes made through this member.
	memberMu sync.Mutex
	// joinMu serialises join handshakes; joined holds when the node of a
	// replica ID accepted one.
	joinMu sync.Mutex
	joined map[uint64]time.Time

	stop    context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Once
}

// New checks cfg and builds a server; it does no I/O.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.NodeID == 0:
		return nil, errors.New("chainfire: node ID must be >= 1 (set [node] id)")
	case cfg.ReplicaID == 0:
		return nil, errors.New("chainfire: replica ID must be >= 1")
	case cfg.Raft == nil || cfg.DB == nil || cfg.Logger == nil || cfg.Registry == nil:
		return nil, errors.New("chainfire: Raft, DB, Logger and Registry are required")
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.MinLeaseTTL <= 0 {
		cfg.MinLeaseTTL = 1
	}
	if cfg.ElectionTimeout <= 0 {
		cfg.ElectionTimeout = time.Second
	}
	if cfg.AuthTokenTTL <= 0 {
		cfg.AuthTokenTTL = defaultTokenTTL
	}
	if cfg.CorruptCheckInterval == 0 {
		cfg.CorruptCheckInterval = defaultCorruptCheckInterval
	}
	log := cfg.Logger.With("component", "chainfire_api")
	lessor := lease.New(nil)
	s := &Server{
		cfg:    cfg,
		fsm:    newFSM(cfg.DB, raftnode.ShardKeyspace(raftnode.MetadataShardID), lessor, cfg.Logger.With("component", "chainfire_storage")),
		lessor: lessor,
		log:    log,
		fwd:    newForwarder(cfg.ClientTLS),
		leader: newLeaderMonitor(),
		tokens: newTokenStore(cfg.AuthTokenTTL),
		joined: map[uint64]time.Time{},
	}
	s.fsm.onTokens = s.tokens.apply
	s.icpts = []connect.Interceptor{leaderInterceptor{s}, authInterceptor{s}}
	m, err := newMetrics(cfg.Registry, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	return s, nil
}

// CreateStateMachine is the factory to start the metadata shard with
// (raftnode.Node.StartShard).
func (s *Server) CreateStateMachine(shardID, replicaID uint64) sm.IOnDiskStateMachine {
	return raftnode.NewDiskStateMachine(s.cfg.DB, raftnode.ShardKeyspace(shardID), s.fsm)
}

// OnLeaderChange must receive the node's leader events: the lessor tracks
// lease deadlines only while this replica leads the metadata shard.
func (s *Server) OnLeaderChange(ev raftnode.LeaderEvent) {
	if ev.ShardID != raftnode.MetadataShardID {
		return
	}
	if ev.LeaderID == ev.ReplicaID && ev.LeaderID != 0 {
		s.lessor.Promote()
		return
	}
	s.lessor.Demote()
}

// Start runs the background work: lease expiry, compaction and publishing
// this member's attributes. The metadata shard must be started.
func (s *Server) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	for _, fn := range []func(context.Context){s.fsm.runCompactor, s.runLeaseExpiry, s.publishAttributes, s.runJoiner, s.monitorLeader, s.monitorQuota, s.monitorDisk, s.runDiscoveryAnswers, s.runCorruptCheck, s.monitorLag, s.reportCatchUp, s.runTokenSweeper} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			fn(ctx)
		}()
	}
}

// Close stops the background work and waits for it. It does not touch the
// raft node or the DB, which the caller closes afterwards. Idempotent.
func (s *Server) Close() {
	s.closeMu.Do(func() {
		if s.stop != nil {
			s.stop()
		}
		s.wg.Wait()
		s.fwd.close()
	})
}

// Handlers returns the etcd v3 services as (path, handler) pairs to mount on
// the API listener.
func (s *Server) Handlers(opts ...connect.HandlerOption) map[string]http.Handler {
	opts = append([]connect.HandlerOption{
		connect.WithReadMaxBytes(maxRequestBytes + 64*1024),
		connect.WithInterceptors(s.interceptors()...),
	}, opts...)
	out := map[string]http.Handler{}
	mount := func(path string, h http.Handler) { out[path] = s.withPeerCert(h) }
	mount(etcdserverpbconnect.NewKVHandler(&kvService{s}, opts...))
	mount(etcdserverpbconnect.NewWatchHandler(&watchService{s}, opts...))
	mount(etcdserverpbconnect.NewLeaseHandler(&leaseService{s}, opts...))
	mount(etcdserverpbconnect.NewMaintenanceHandler(&maintenanceService{s: s}, opts...))
	mount(etcdserverpbconnect.NewClusterHandler(&clusterService{s: s}, opts...))
	mount(etcdserverpbconnect.NewAuthHandler(&authService{s: s}, opts...))
	mount(chainfirev1connect.NewClusterServiceHandler(&adminService{s: s}, opts...))
	return out
}

// interceptors wrap every etcd service call, on the Connect routes and on
// the grpc-go ones (RegisterGRPC, which wraps per call: built once here so
// the call allocates only the wrappers).
func (s *Server) interceptors() []connect.Interceptor { return s.icpts }

// withTimeout applies the default request timeout when ctx has no deadline.
func (s *Server) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// raftDeadline gives ctx the default request deadline when it has none,
// without arming a timer: raftnode passes the deadline on to dragonboat,
// which times the request out itself (to the raft tick), so a context timer
// per request (3% of the leader's CPU under put-100) would only duplicate
// it. ctx's own cancellation still ends the wait. For raftnode calls only.
func (s *Server) raftDeadline(ctx context.Context) context.Context {
	if _, ok := ctx.Deadline(); ok {
		return ctx
	}
	return deadlineCtx{ctx, time.Now().Add(s.cfg.RequestTimeout)}
}

// deadlineCtx is a context with a deadline that nothing enforces but the
// callee.
type deadlineCtx struct {
	context.Context
	deadline time.Time
}

func (c deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// propose replicates cmd through the metadata shard.
func (s *Server) propose(ctx context.Context, cmd *raftcmdv1.Command) error {
	_, err := s.proposeResult(ctx, cmd)
	return err
}

// proposeResult replicates cmd through the metadata shard and returns the
// applier's result. The command and its result pass between this request
// and the apply in memory (handoffs); the log holds cmd encoded.
func (s *Server) proposeResult(ctx context.Context, cmd *raftcmdv1.Command) (proto.Message, error) {
	if s.fsm.auth.Load().enabled {
		cmd.AuthRevision, _ = ctx.Value(authRevKey{}).(uint64)
	}
	cmd.Version = versionFor(cmd)
	cmd.Proposal = s.fsm.handoffs.id()
	data, err := encodeCommand(cmd)
	if err != nil {
		return nil, err
	}
	if len(data) > maxRequestBytes {
		return nil, ErrRequestTooLarge
	}
	if err := s.admit(ctx, cmd, len(data)); err != nil {
		return nil, err
	}
	p := s.fsm.handoffs.add(cmd, data)
	defer s.fsm.handoffs.done(cmd.Proposal)
	start := time.Now()
	res, err := s.cfg.Raft.Propose(s.raftDeadline(ctx), raftnode.MetadataShardID, data)
	s.metrics.observeWrite(time.Since(start), err)
	if err != nil {
		return nil, err
	}
	if res.Value != 0 {
		return nil, applyErrorFromCode(res.Value)
	}
	if p.resp == nil {
		return nil, fmt.Errorf("chainfire: proposal %d completed without a result from the apply on this member", cmd.Proposal)
	}
	return p.resp, nil
}

// resultAs returns an applied result as an R: m itself when it is one,
// else re-encoded (the auth commands answer every auth RPC with one
// header-only message).
func resultAs[T any, R interface {
	*T
	proto.Message
}](m proto.Message) (R, error) {
	if r, ok := m.(R); ok {
		return r, nil
	}
	r := R(new(T))
	data, err := proto.Marshal(m)
	if err == nil {
		err = proto.Unmarshal(data, r)
	}
	if err != nil {
		return nil, fmt.Errorf("chainfire: convert apply result %T to %T: %w", m, r, err)
	}
	return r, nil
}

// read runs q on the committed state: linearizable unless serializable.
func (s *Server) read(ctx context.Context, q any, serializable bool) (any, error) {
	if serializable {
		return s.cfg.Raft.StaleRead(raftnode.MetadataShardID, q)
	}
	return s.cfg.Raft.Read(s.raftDeadline(ctx), raftnode.MetadataShardID, q)
}

// header fills the fields of a response header that the state machine does
// not know: cluster, member and raft term.
func (s *Server) header(h *etcdserverpb.ResponseHeader) *etcdserverpb.ResponseHeader {
	if h == nil {
		h = &etcdserverpb.ResponseHeader{Revision: s.fsm.rev.Load()}
	}
	h.ClusterId = s.cfg.ClusterID
	h.MemberId = s.cfg.NodeID
	_, term, _ := s.cfg.Raft.Leader(raftnode.MetadataShardID)
	h.RaftTerm = term
	return h
}

// Revision returns the newest revision applied on this node.
func (s *Server) Revision() int64 { return s.fsm.rev.Load() }

// HasLeader reports whether the metadata shard has a known leader.
func (s *Server) HasLeader() bool {
	id, _, ok := s.cfg.Raft.Leader(raftnode.MetadataShardID)
	return ok && id != 0
}

// confirmLeadership returns nil if this replica still leads the metadata
// shard after a ReadIndex round (a quorum heard from it since now), else
// lease.ErrNotPrimary, so that the caller forwards to the leader.
func (s *Server) confirmLeadership(ctx context.Context) error {
	rctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if _, err := s.cfg.Raft.Read(rctx, raftnode.MetadataShardID, revQuery{}); err != nil {
		return err
	}
	if leader, _, ok := s.cfg.Raft.Leader(raftnode.MetadataShardID); !ok || leader != s.cfg.ReplicaID {
		return lease.ErrNotPrimary
	}
	return nil
}

// Ready returns nil once this node can serve linearizable reads: the shard
// has a leader and this replica applied everything up to the read index.
func (s *Server) Ready(ctx context.Context) error {
	_, err := s.cfg.Raft.Read(ctx, raftnode.MetadataShardID, revQuery{})
	return err
}
