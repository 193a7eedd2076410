package raftnode

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// DefaultSlowCompaction is the duration from which a finished compaction
// is logged as slow when OpenStateDB is given 0.
const DefaultSlowCompaction = 10 * time.Second

// OpenStateDB opens the process-wide pebble/v2 DB (<data_dir>/state) shared
// by every state machine of the node. opts comes from config (nil means
// pebble's defaults) and is not modified: OpenStateDB works on a clone whose
// Logger routes pebble's logs to logger and whose EventListener (teed with
// opts.EventListener) logs write stalls ("RocksDB stall detected,
// duration=...", the runbooks' wording), compactions lasting slowCompaction
// or more ("Compaction is slow, duration=..."; 0 means
// DefaultSlowCompaction), slow disks, low disk space, corruption and
// background errors. The WAL must stay enabled: DiskStateMachine's
// durability relies on it.
//
// logger should carry the "component" the runbooks name the node's storage
// by (chainfire_storage or flaredb_storage). Close the DB only after
// Node.Close returned.
func OpenStateDB(dir string, opts *pebble.Options, logger *slog.Logger, slowCompaction time.Duration) (*pebble.DB, error) {
	if logger == nil {
		return nil, fmt.Errorf("%w: OpenStateDB: logger is nil; pass the process *slog.Logger", ErrInvalidConfig)
	}
	if opts == nil {
		opts = &pebble.Options{}
	} else {
		opts = opts.Clone()
	}
	if opts.DisableWAL {
		return nil, fmt.Errorf("%w: OpenStateDB: DisableWAL is set; the state machines need the WAL for prefix durability, unset it", ErrInvalidConfig)
	}
	opts.Logger = pebbleLogger{log: logger}
	if slowCompaction <= 0 {
		slowCompaction = DefaultSlowCompaction
	}
	ours := stateEventListener(logger, slowCompaction)
	if opts.EventListener != nil {
		ours = pebble.TeeEventListener(ours, *opts.EventListener)
	}
	opts.EventListener = &ours
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("raftnode: open state DB in %s: %w", dir, err)
	}
	return db, nil
}

// stateEventListener logs the pebble events an operator acts on.
func stateEventListener(log *slog.Logger, slowCompaction time.Duration) pebble.EventListener {
	var stallBegan atomic.Int64 // unix nanos of the running stall, 0 if none
	return pebble.EventListener{
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			stallBegan.Store(time.Now().UnixNano())
			log.Warn("RocksDB stall started", "reason", info.Reason)
		},
		WriteStallEnd: func() {
			began := stallBegan.Swap(0)
			if began == 0 {
				return
			}
			d := time.Since(time.Unix(0, began))
			log.Warn(fmt.Sprintf("RocksDB stall detected, duration=%dms", d.Milliseconds()))
		},
		CompactionEnd: func(info pebble.CompactionInfo) {
			if info.TotalDuration >= slowCompaction {
				log.Warn(fmt.Sprintf("Compaction is slow, duration=%s", roundDuration(info.TotalDuration)),
					"job_id", info.JobID, "reason", info.Reason)
			}
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			log.Warn(fmt.Sprintf("Disk is slow, duration=%dms", info.Duration.Milliseconds()), "path", info.Path, "op", info.OpType.String())
		},
		LowDiskSpace: func(info pebble.LowDiskSpaceInfo) {
			log.Warn(fmt.Sprintf("Low disk space, available below %d%%", info.PercentThreshold),
				"avail_bytes", info.AvailBytes, "total_bytes", info.TotalBytes)
		},
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			log.Error("Storage data corruption detected", "path", info.Path, "err", info.Details)
		},
		BackgroundError: func(err error) {
			log.Error("Storage background error", "err", err)
		},
	}
}

// roundDuration rounds d to seconds from 1 s (the runbooks'
// "duration=30s"), to milliseconds below.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// pebbleLogger routes pebble's logger into slog.
type pebbleLogger struct{ log *slog.Logger }

// Infof implements pebble.Logger.
func (l pebbleLogger) Infof(format string, args ...any) { l.log.Info(fmt.Sprintf(format, args...)) }

// Errorf implements pebble.Logger.
func (l pebbleLogger) Errorf(format string, args ...any) { l.log.Error(fmt.Sprintf(format, args...)) }

// Fatalf implements pebble.Logger: it logs at ERROR and panics, since pebble
// does not expect Fatalf to return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg)
	panic("pebble: " + msg)
}
