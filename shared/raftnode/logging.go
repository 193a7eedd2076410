package raftnode

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

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
