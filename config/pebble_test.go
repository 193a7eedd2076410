package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// testLogger routes pebble's logs to the test.
type testLogger struct{ t *testing.T }

func (l testLogger) Infof(format string, args ...any)  { l.t.Logf(format, args...) }
func (l testLogger) Errorf(format string, args ...any) { l.t.Logf("ERROR "+format, args...) }
func (l testLogger) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func TestPebbleOptions(t *testing.T) {
	s := Default().Storage
	s.WriteBufferSize = 8 << 20
	s.MaxWriteBufferNumber = 4
	s.BlockCacheSize = 16 << 20
	s.MaxOpenFiles = 500
	s.BloomFilterBitsPerKey = 12
	s.Level0FileNumCompactionTrigger = 8
	s.MaxBackgroundCompactions = 3
	o := s.PebbleOptions()

	if o.MemTableSize != 8<<20 || o.MemTableStopWritesThreshold != 4 || o.CacheSize != 16<<20 || o.MaxOpenFiles != 500 {
		t.Errorf("memtable/cache/files = %d %d %d %d", o.MemTableSize, o.MemTableStopWritesThreshold, o.CacheSize, o.MaxOpenFiles)
	}
	if o.L0CompactionThreshold != 8 || o.L0StopWritesThreshold != 24 {
		t.Errorf("L0 thresholds = %d, %d; want 8, 24", o.L0CompactionThreshold, o.L0StopWritesThreshold)
	}
	if lo, hi := o.CompactionConcurrencyRange(); lo != 1 || hi != 3 {
		t.Errorf("CompactionConcurrencyRange() = %d, %d; want 1, 3", lo, hi)
	}
	for i, l := range o.Levels {
		if l.FilterPolicy != bloom.FilterPolicy(12) {
			t.Errorf("Levels[%d].FilterPolicy = %v, want bloom(12)", i, l.FilterPolicy)
		}
	}
	if def := Default().Storage.PebbleOptions(); def.L0StopWritesThreshold != 12 {
		t.Errorf("default L0StopWritesThreshold = %d, want pebble's 12", def.L0StopWritesThreshold)
	}
	s.BloomFilterBitsPerKey = 0
	if o := s.PebbleOptions(); o.Levels[0].FilterPolicy != nil {
		t.Errorf("bloom 0: FilterPolicy = %v, want none", o.Levels[0].FilterPolicy)
	}

	// The options open a real store, pass pebble's own validation and
	// serve reads through the bloom filters.
	o = Default().Storage.PebbleOptions()
	o.Logger = testLogger{t}
	o.MemTableSize = 1 << 20
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatalf("pebble Validate: %v", err)
	}
	db, err := pebble.Open(t.TempDir(), o)
	if err != nil {
		t.Fatalf("pebble.Open: %v", err)
	}
	for i := range 1000 {
		if err := db.Set(fmt.Appendf(nil, "k%04d", i), []byte("v"), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if v, closer, err := db.Get([]byte("k0042")); err != nil || string(v) != "v" {
		t.Errorf("Get = %q, %v", v, err)
	} else {
		closer.Close()
	}
	if _, _, err := db.Get([]byte("absent")); !errors.Is(err, pebble.ErrNotFound) {
		t.Errorf("Get(absent) = %v, want ErrNotFound", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStorageWarnings(t *testing.T) {
	s := Default().Storage
	if w := s.Warnings(); len(w) != 0 {
		t.Errorf("default Warnings() = %q, want none", w)
	}
	s.UseDirectIOForFlushAndCompaction = true
	s.MaxBackgroundFlushes = 4
	w := s.Warnings()
	if len(w) != 2 || !strings.Contains(w[0], "use_direct_io_for_flush_and_compaction") || !strings.Contains(w[1], "max_background_flushes = 4") {
		t.Errorf("Warnings() = %q", w)
	}
}
