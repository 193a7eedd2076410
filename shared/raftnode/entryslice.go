package raftnode

import _ "unsafe" // go:linkname

// dragonboat's in-memory raft log (internal/raft.inMemory) drops applied
// entries by re-slicing and, whenever fewer than minEntrySliceSize free
// slots remain or at most one entry is left, copies the rest into a fresh
// slice of entrySliceSize entries. With one client every applied entry
// empties the log, so each put allocated and zeroed a 512-entry slice
// (~40 KiB): 5% of the put-1 profile plus the GC it caused. The two values
// are soft settings (dragonboat-soft-settings.json in the working
// directory, read at init), not part of any config struct; set them here
// before any shard starts. A deep queue still grows the slice by append.
//
//go:linkname inMemEntrySliceSize github.com/lni/dragonboat/v4/internal/raft.entrySliceSize
var inMemEntrySliceSize uint64

//go:linkname inMemMinEntrySliceFree github.com/lni/dragonboat/v4/internal/raft.minEntrySliceSize
var inMemMinEntrySliceFree uint64

func init() {
	inMemEntrySliceSize, inMemMinEntrySliceFree = 16, 4
}
