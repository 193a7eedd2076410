package config

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// minL0StopWrites is pebble's default L0StopWritesThreshold.
const minL0StopWrites = 12

// PebbleOptions maps the [storage] keys to pebble/v2 options as doc.go
// describes. The caller sets Logger, FS and the other options centra needs
// (Comparer, EventListener, ...); pebble.Open fills in the rest with
// EnsureDefaults. The block cache is created and released by pebble.Open
// from CacheSize, so there is nothing to free.
func (s Storage) PebbleOptions() *pebble.Options {
	o := &pebble.Options{
		CacheSize:                   int64(s.BlockCacheSize),
		MemTableSize:                s.WriteBufferSize,
		MemTableStopWritesThreshold: s.MaxWriteBufferNumber,
		L0CompactionThreshold:       s.Level0FileNumCompactionTrigger,
		L0StopWritesThreshold:       max(minL0StopWrites, 3*s.Level0FileNumCompactionTrigger),
		MaxOpenFiles:                s.MaxOpenFiles,
	}
	compactions := s.MaxBackgroundCompactions
	o.CompactionConcurrencyRange = func() (lower, upper int) { return 1, compactions }
	if s.BloomFilterBitsPerKey > 0 {
		policy := bloom.FilterPolicy(s.BloomFilterBitsPerKey)
		for i := range o.Levels {
			o.Levels[i].FilterPolicy = policy
		}
	}
	return o
}

// Warnings lists the [storage] settings pebble cannot honour, one sentence
// each, for the caller to log at startup. Default values give none.
func (s Storage) Warnings() []string {
	var w []string
	if s.UseDirectIOForFlushAndCompaction {
		w = append(w, "storage.use_direct_io_for_flush_and_compaction = true has no effect: pebble has no direct I/O; flushes and compactions use buffered I/O")
	}
	if d := Default().Storage.MaxBackgroundFlushes; s.MaxBackgroundFlushes != d {
		w = append(w, fmt.Sprintf("storage.max_background_flushes = %d has no effect: pebble flushes one memtable at a time", s.MaxBackgroundFlushes))
	}
	return w
}
