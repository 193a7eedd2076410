package raftnode

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4/logger"
)

// dragonboat's logger registry is process-global and its factory can be set
// only once, so every Node shares one bridge. Records go to the most recently
// started Node that is still open (a real process has one Node; tests have
// several). With no Node open, records are dropped (Panicf still panics).
var dragonboatLogs struct {
	once  sync.Once
	mu    sync.Mutex
	sinks []*logSink
	cur   atomic.Pointer[logSink]
}

// logSink is one Node's destination for dragonboat records.
type logSink struct {
	logger *slog.Logger
	level  slog.Level
	// network is the component of transport records rewritten in the
	// runbook's words (Config.NetworkLogComponent).
	network string
	// peers is the Node's PeerNamer (SetPeerNamer), nil when unset.
	peers *atomic.Pointer[PeerNamer]
}

// PeerNamer names the owner of a raft address, for the runbook's
// "Failed to replicate log, peer=NAME" line (FlareDB names stores:
// "store2"); ok is false for an address it does not know.
type PeerNamer func(raftAddress string) (name string, ok bool)

// SetPeerNamer makes every "Failed to connect to peer" line for an address
// fn names also log "ERROR flaredb_raft: Failed to replicate log,
// peer=NAME": the regions this node leads cannot send that peer their log.
func (n *Node) SetPeerNamer(fn PeerNamer) { n.peerNamer.Store(&fn) }

// Components of the runbook's log lines. The metadata shard is Chainfire's
// (and PD's); every other shard is a FlareDB region.
const (
	componentChainfireRaft = "chainfire_raft"
	componentFlareDBRaft   = "flaredb_raft"
)

// shardComponent names the log component of a shard's raft records.
func shardComponent(shardID uint64) string {
	if shardID == MetadataShardID {
		return componentChainfireRaft
	}
	return componentFlareDBRaft
}

// pkgFloors raises dragonboat's chatty packages: "raft" logs every election
// step at WARNING; "rsm", "transport", "dragonboat" and "logdb" log routine
// snapshot, connection and startup details (about 30 lines per NodeHost
// start) at INFO, which the Node's own log lines summarize.
var pkgFloors = map[string]slog.Level{
	"raft":       slog.LevelError,
	"rsm":        slog.LevelWarn,
	"transport":  slog.LevelWarn,
	"dragonboat": slog.LevelWarn,
	"logdb":      slog.LevelWarn,
}

// attachDragonboatLogs installs the bridge (once per process) and makes s the
// destination of dragonboat's records.
func attachDragonboatLogs(s *logSink) {
	dragonboatLogs.once.Do(func() {
		logger.SetLoggerFactory(func(pkg string) logger.ILogger {
			l := &pkgLogger{pkg: pkg, component: "dragonboat/" + pkg, floor: slog.LevelDebug}
			if f, ok := pkgFloors[pkg]; ok {
				l.floor = f
			}
			l.maxLevel.Store(int32(logger.DEBUG))
			return l
		})
	})
	dragonboatLogs.mu.Lock()
	defer dragonboatLogs.mu.Unlock()
	dragonboatLogs.sinks = append(dragonboatLogs.sinks, s)
	dragonboatLogs.cur.Store(s)
}

// detachDragonboatLogs removes s; records go to the latest remaining sink.
func detachDragonboatLogs(s *logSink) {
	dragonboatLogs.mu.Lock()
	defer dragonboatLogs.mu.Unlock()
	dragonboatLogs.sinks = slices.DeleteFunc(dragonboatLogs.sinks, func(x *logSink) bool { return x == s })
	var next *logSink
	if n := len(dragonboatLogs.sinks); n > 0 {
		next = dragonboatLogs.sinks[n-1]
	}
	dragonboatLogs.cur.Store(next)
}

// pkgLogger implements dragonboat's logger.ILogger for one package.
type pkgLogger struct {
	pkg       string
	component string
	floor     slog.Level
	// maxLevel is the most verbose dragonboat level allowed by SetLevel.
	maxLevel atomic.Int32
}

var _ logger.ILogger = (*pkgLogger)(nil)

// SetLevel implements logger.ILogger; it can only make the package quieter
// than the Node's LogLevel, never louder.
func (l *pkgLogger) SetLevel(level logger.LogLevel) { l.maxLevel.Store(int32(level)) }

// Debugf implements logger.ILogger.
func (l *pkgLogger) Debugf(format string, args ...any) {
	l.log(logger.DEBUG, slog.LevelDebug, format, args)
}

// Infof implements logger.ILogger.
func (l *pkgLogger) Infof(format string, args ...any) {
	l.log(logger.INFO, slog.LevelInfo, format, args)
}

// Warningf implements logger.ILogger.
func (l *pkgLogger) Warningf(format string, args ...any) {
	l.log(logger.WARNING, slog.LevelWarn, format, args)
}

// Errorf implements logger.ILogger.
func (l *pkgLogger) Errorf(format string, args ...any) {
	l.log(logger.ERROR, slog.LevelError, format, args)
}

// Panicf implements logger.ILogger: it logs at ERROR and panics, as
// dragonboat expects.
func (l *pkgLogger) Panicf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if s := dragonboatLogs.cur.Load(); s != nil {
		s.logger.Error(msg, "component", l.component)
	}
	panic(fmt.Sprintf("dragonboat/%s: %s", l.pkg, msg))
}

// perCallWarnings are dragonboat warnings logged on every call of an API we
// use on purpose (serializable reads); they are demoted to debug so they
// cannot flood the log.
var perCallWarnings = []string{"StaleRead called"}

func (l *pkgLogger) log(dl logger.LogLevel, level slog.Level, format string, args []any) {
	if s := dragonboatLogs.cur.Load(); s != nil && rewrite(s, format, args) {
		return
	}
	for _, w := range perCallWarnings {
		if strings.HasPrefix(format, w) {
			dl, level = logger.DEBUG, slog.LevelDebug
		}
	}
	if int32(dl) > l.maxLevel.Load() {
		return
	}
	s := dragonboatLogs.cur.Load()
	if s == nil {
		return
	}
	threshold := s.level
	if s.level > slog.LevelDebug {
		threshold = max(threshold, l.floor)
	}
	if level < threshold || !s.logger.Enabled(context.Background(), level) {
		return
	}
	s.logger.Log(context.Background(), level, fmt.Sprintf(format, args...), "component", l.component)
}

// dragonboat's format strings that rewrite turns into the runbook's lines
// (pinned version's internal/transport and internal/raft; a changed format
// only means the raw record is logged as before).
const (
	fmtConnectFailed  = "Nodehost %s failed to get a connection to %s, %v"
	fmtBreakerFailed  = "breaker %s to %s failed, connect and process failed: %s"
	fmtStreamUp       = "message streaming to %s established"
	fmtPreVoteStarted = "%s became PreVote candidate"
)

// peerRepeat is how often a peer that stays unreachable is logged again.
const peerRepeat = 30 * time.Second

// unreachable holds, per peer address, when "Failed to connect to peer" was
// last logged during the current failure streak.
var unreachable struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// replicaRE finds dragonboat's "[SHARD:REPLICA]" in raft's describe().
var replicaRE = regexp.MustCompile(`\[(\d+):(\d+)\]`)

// rewrite logs the dragonboat records an operator greps for in the
// runbook's words, and reports whether it handled the record:
//
//   - a failed dial: ERROR <network>: Failed to connect to peer,
//     addr=HOST:PORT (with the error), once per failure streak and then
//     every peerRepeat; the raw breaker lines go to debug;
//   - the stream to a peer that failed before is up again: INFO Connected to
//     peer;
//   - a voter whose election timer fired (PreVote starts an election only
//     then): WARN <shard>: Election timeout, no heartbeat from leader.
func rewrite(s *logSink, format string, args []any) bool {
	ctx := context.Background()
	switch format {
	case fmtConnectFailed:
		if len(args) != 3 {
			return false
		}
		addr := fmt.Sprint(args[1])
		level := slog.LevelDebug
		unreachable.mu.Lock()
		if unreachable.last == nil {
			unreachable.last = map[string]time.Time{}
		}
		if t, ok := unreachable.last[addr]; !ok || time.Since(t) >= peerRepeat {
			unreachable.last[addr] = time.Now()
			level = slog.LevelError
		}
		unreachable.mu.Unlock()
		if level < s.level {
			return true
		}
		s.logger.Log(ctx, level, "Failed to connect to peer, addr="+addr, "component", s.network, "err", fmt.Sprint(args[2]))
		if s.peers == nil || level != slog.LevelError {
			return true
		}
		if fn := s.peers.Load(); fn != nil {
			if name, ok := (*fn)(addr); ok {
				s.logger.Error("Failed to replicate log, peer="+name, "component", componentFlareDBRaft, "addr", addr)
			}
		}
		return true
	case fmtBreakerFailed:
		if s.level <= slog.LevelDebug {
			s.logger.Debug(fmt.Sprintf(format, args...), "component", s.network)
		}
		return true
	case fmtStreamUp:
		if len(args) != 1 {
			return false
		}
		addr := fmt.Sprint(args[0])
		unreachable.mu.Lock()
		_, failed := unreachable.last[addr]
		delete(unreachable.last, addr)
		unreachable.mu.Unlock()
		if failed {
			s.logger.Info("Connected to peer, addr="+addr, "component", s.network)
		}
		return failed
	case fmtPreVoteStarted:
		if len(args) != 1 {
			return false
		}
		desc := fmt.Sprint(args[0])
		m := replicaRE.FindStringSubmatch(desc)
		if m == nil {
			return false
		}
		shard, _ := strconv.ParseUint(m[1], 10, 64)
		replica, _ := strconv.ParseUint(m[2], 10, 64)
		s.logger.Warn("Election timeout, no heartbeat from leader", "component", shardComponent(shard),
			"shard_id", shard, "replica_id", replica)
		return true
	}
	return false
}
