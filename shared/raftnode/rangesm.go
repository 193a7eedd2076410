package raftnode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/lni/dragonboat/v4/statemachine"
)

// RangeApplier is the application logic of one region driven by
// RangeStateMachine. Besides its Keyspace's data subspace (shard-prefixed
// meta such as the region descriptor) it owns a range of the store-wide data
// keyspace, which changes on split.
type RangeApplier interface {
	// Bounds returns the data key range [lower, upper) the replica owns now
	// (full pebble keys, upper non-empty). It is called by PrepareSnapshot,
	// never concurrently with Apply or Load. The range must not overlap the
	// shard keyspace ('s' ...).
	Bounds() (lower, upper []byte)
	// Load, Apply, Applied and Lookup are as in Applier.
	Load(r pebble.Reader) error
	Apply(b *pebble.Batch, entries []statemachine.Entry) error
	Applied(index uint64)
	Lookup(query any) (any, error)
}

// RangeStateMachine is DiskStateMachine for a shard (a FlareDB region) that
// owns, besides its shard prefix, a key range of a store-wide data keyspace.
// Open, Update, Lookup, Sync and the applied index are DiskStateMachine's;
// the snapshot holds the shard prefix plus the data keys in Bounds() at
// PrepareSnapshot time (stream version 2, DESIGN.md), and recovery replaces
// exactly those two spans atomically by ingesting one SST.
type RangeStateMachine struct {
	smCore
	rapp RangeApplier
	// IngestDir is where RecoverFromSnapshot builds its SST before
	// ingesting it; empty means os.TempDir(). Put it on the state DB's file
	// system so pebble can hard-link the file instead of copying it.
	IngestDir string
	// Limits, when set, caps and counts the snapshot streams this state
	// machine sends and receives (shared by a store's regions).
	Limits *SnapshotLimits
}

var (
	_ statemachine.IOnDiskStateMachine = (*RangeStateMachine)(nil)
	_ AppliedIndexReporter             = (*RangeStateMachine)(nil)
)

// NewRangeStateMachine returns the state machine of ks's shard over db (the
// DB from OpenStateDB), whose data lives in app.Bounds().
func NewRangeStateMachine(db *pebble.DB, ks Keyspace, app RangeApplier) *RangeStateMachine {
	s := &RangeStateMachine{rapp: app}
	s.init(db, ks, app)
	return s
}

// rangeSnapshot is what PrepareSnapshot hands to SaveSnapshot.
type rangeSnapshot struct {
	snap         *pebble.Snapshot
	lower, upper []byte
}

// PrepareSnapshot implements IOnDiskStateMachine: a pebble snapshot plus
// the data bounds at that point (PrepareSnapshot excludes Update).
func (s *RangeStateMachine) PrepareSnapshot() (any, error) {
	lower, upper := s.rapp.Bounds()
	if err := checkDataRange(s.ks, lower, upper); err != nil {
		return nil, err
	}
	return &rangeSnapshot{snap: s.db.NewSnapshot(), lower: bytes.Clone(lower), upper: bytes.Clone(upper)}, nil
}

// SaveSnapshot implements IOnDiskStateMachine: it streams the shard prefix
// and the data range from the snapshot returned by PrepareSnapshot and
// releases it.
func (s *RangeStateMachine) SaveSnapshot(ctx any, w io.Writer, done <-chan struct{}) error {
	rs, ok := ctx.(*rangeSnapshot)
	if !ok {
		return fmt.Errorf("raftnode: shard %d: SaveSnapshot got %T, want the context from RangeStateMachine.PrepareSnapshot", s.ks.shardID, ctx)
	}
	defer rs.snap.Close()
	release, err := s.Limits.enterSend(done)
	if err != nil {
		return err
	}
	err = writeRangeSnapshot(w, rs.snap, s.ks, rs.lower, rs.upper, done)
	release(err)
	return err
}

// RecoverFromSnapshot implements IOnDiskStateMachine. The stream is
// verified while it is written into an SST holding range deletions of the
// shard prefix and of the data range recorded in the stream, plus every
// pair; only after the checksum matched is the SST ingested (one atomic,
// durable version edit), so a corrupt stream leaves the state untouched.
// Keys outside the two spans (other regions' data) are never touched.
func (s *RangeStateMachine) RecoverFromSnapshot(r io.Reader, done <-chan struct{}) (err error) {
	release, err := s.Limits.enterRecv(done)
	if err != nil {
		return err
	}
	defer func() { release(err) }()
	tmp, err := os.CreateTemp(s.IngestDir, fmt.Sprintf("raftnode-snap-%d-*.sst", s.ks.shardID))
	if err != nil {
		return fmt.Errorf("raftnode: shard %d: recover from snapshot: create SST: %w", s.ks.shardID, err)
	}
	path := tmp.Name()
	tmp.Close()
	defer os.Remove(path)
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("raftnode: shard %d: recover from snapshot: create SST: %w", s.ks.shardID, err)
	}
	format := s.db.FormatMajorVersion().MaxTableFormat()
	if format > sstable.TableFormatPebblev4 {
		// Row-block format: no key schema to agree on with the DB's options.
		format = sstable.TableFormatPebblev4
	}
	// The writable syncs the file when the writer finishes.
	sw := sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{TableFormat: format})
	closed := false
	defer func() {
		if !closed {
			sw.Close()
		}
	}()
	if err := readRangeSnapshot(r, s.ks, sw, done); err != nil {
		if errors.Is(err, statemachine.ErrSnapshotStopped) {
			return err
		}
		return fmt.Errorf("raftnode: shard %d: recover from snapshot (state left unchanged): %w", s.ks.shardID, err)
	}
	closed = true
	if err := sw.Close(); err != nil {
		return fmt.Errorf("raftnode: shard %d: recover from snapshot (state left unchanged): finish SST: %w", s.ks.shardID, err)
	}
	if err := s.db.Ingest(context.Background(), []string{path}); err != nil {
		return fmt.Errorf("raftnode: shard %d: ingest snapshot: %w", s.ks.shardID, err)
	}
	return s.reload()
}

// checkDataRange rejects a data range that is empty or reaches into the
// shard keyspace ['s', 't'), where a range deletion would hit every shard's
// meta.
func checkDataRange(ks Keyspace, lower, upper []byte) error {
	if len(upper) == 0 || bytes.Compare(lower, upper) >= 0 {
		return fmt.Errorf("raftnode: shard %d: data range [%q, %q) is empty or unbounded", ks.shardID, lower, upper)
	}
	if bytes.Compare(upper, []byte{shardTag}) > 0 && bytes.Compare(lower, []byte{shardTag + 1}) < 0 {
		return fmt.Errorf("raftnode: shard %d: data range [%q, %q) overlaps the shard keyspace ['s', 't')", ks.shardID, lower, upper)
	}
	return nil
}

// Snapshot stream version 2 (RangeStateMachine, see DESIGN.md):
//
//	header  "RNSNAP" version:u8=2 shardID:be64 lowerLen:be32 lower upperLen:be32 upper
//	pair*   tag keyLen:be32 key valueLen:be32 value
//	trailer 0x00 pairCount:be64 crc:be32
//
// tag 0x01: key relative to the shard prefix; tag 0x02: full data key in
// [lower, upper). Pairs are in strictly increasing full-key order (the span
// with the smaller start first).
const (
	snapshotV2          byte = 2
	snapshotTagDataPair byte = 0x02
)

// writeRangeSnapshot streams the shard prefix and [lower, upper) of r to w.
func writeRangeSnapshot(w io.Writer, r pebble.Reader, ks Keyspace, lower, upper []byte, done <-chan struct{}) error {
	sw := newStreamWriter(w)
	out := sw.out
	var lens [4]byte
	writeField := func(b []byte) error {
		binary.BigEndian.PutUint32(lens[:], uint32(len(b)))
		if _, err := out.Write(lens[:]); err != nil {
			return err
		}
		_, err := out.Write(b)
		return err
	}
	if err := sw.header(ks, snapshotV2); err != nil {
		return err
	}
	if err := writeField(lower); err != nil {
		return err
	}
	if err := writeField(upper); err != nil {
		return err
	}
	type span struct {
		lower, upper []byte
		tag          byte
		strip        int
	}
	slo, shi := ks.ShardBounds()
	spans := []span{{slo, shi, snapshotTagPair, shardPrefixSz}, {lower, upper, snapshotTagDataPair, 0}}
	if bytes.Compare(lower, slo) < 0 {
		spans[0], spans[1] = spans[1], spans[0]
	}
	var count uint64
	for _, sp := range spans {
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: sp.lower, UpperBound: sp.upper})
		if err != nil {
			return fmt.Errorf("raftnode: shard %d: snapshot iterator: %w", ks.shardID, err)
		}
		for valid := it.First(); valid; valid = it.Next() {
			if count%snapshotDoneCheck == 0 && stopped(done) {
				it.Close()
				return statemachine.ErrSnapshotStopped
			}
			v, err := it.ValueAndErr()
			if err == nil {
				if _, err = out.Write([]byte{sp.tag}); err == nil {
					if err = writeField(it.Key()[sp.strip:]); err == nil {
						err = writeField(v)
					}
				}
			}
			if err != nil {
				it.Close()
				return fmt.Errorf("raftnode: shard %d: snapshot pair: %w", ks.shardID, err)
			}
			count++
		}
		if err := it.Close(); err != nil {
			return fmt.Errorf("raftnode: shard %d: snapshot iteration: %w", ks.shardID, err)
		}
	}
	return sw.finish(count)
}

// readRangeSnapshot verifies a version 2 stream for ks's shard and writes
// range deletions of the shard prefix and the recorded data range, then
// every pair, into sw. sw must not be ingested when it returns an error.
func readRangeSnapshot(r io.Reader, ks Keyspace, sw *sstable.Writer, done <-chan struct{}) error {
	cr, err := readHeader(r, ks, snapshotV2, "a range state machine", "upgrade the receiving node or check the shard's state machine type")
	if err != nil {
		return err
	}
	var (
		lens                   [4]byte
		lowBuf, upBuf          bytes.Buffer
		keyBuf, valBuf         bytes.Buffer
		tag                    [1]byte
		count                  uint64
		full, prev             []byte
		lower, upper, slo, shi []byte
	)
	if err := readField(cr, &lens, &lowBuf, maxSnapshotKey, "lower bound"); err != nil {
		return err
	}
	if err := readField(cr, &lens, &upBuf, maxSnapshotKey, "upper bound"); err != nil {
		return err
	}
	lower, upper = lowBuf.Bytes(), upBuf.Bytes()
	if err := checkDataRange(ks, lower, upper); err != nil {
		return corrupt("%v", err)
	}
	// The range is only trusted once the checksum matched, which happens
	// before the SST is ingested.
	slo, shi = ks.ShardBounds()
	dels := [][2][]byte{{slo, shi}, {lower, upper}}
	if bytes.Compare(lower, slo) < 0 {
		dels[0], dels[1] = dels[1], dels[0]
	}
	for _, d := range dels {
		if err := sw.DeleteRange(d[0], d[1]); err != nil {
			return fmt.Errorf("raftnode: shard %d: stage snapshot range deletion: %w", ks.shardID, err)
		}
	}
	for {
		if count%snapshotDoneCheck == 0 && stopped(done) {
			return statemachine.ErrSnapshotStopped
		}
		if err := readFull(cr, tag[:], "pair tag"); err != nil {
			return err
		}
		if tag[0] == snapshotTagEnd {
			break
		}
		if err := readField(cr, &lens, &keyBuf, maxSnapshotKey, "key"); err != nil {
			return err
		}
		if keyBuf.Len() == 0 {
			return corrupt("empty key after %d pairs", count)
		}
		if err := readField(cr, &lens, &valBuf, maxSnapshotValue, "value"); err != nil {
			return err
		}
		switch tag[0] {
		case snapshotTagPair:
			full = append(append(full[:0], ks.prefix[:]...), keyBuf.Bytes()...)
		case snapshotTagDataPair:
			full = append(full[:0], keyBuf.Bytes()...)
			if bytes.Compare(full, lower) < 0 || bytes.Compare(full, upper) >= 0 {
				return corrupt("data key %q outside [%q, %q)", full, lower, upper)
			}
		default:
			return corrupt("unknown tag 0x%02x after %d pairs", tag[0], count)
		}
		if count > 0 && bytes.Compare(prev, full) >= 0 {
			return corrupt("key %q out of order after %d pairs", full, count)
		}
		if err := sw.Set(full, valBuf.Bytes()); err != nil {
			return fmt.Errorf("raftnode: shard %d: stage snapshot pair: %w", ks.shardID, err)
		}
		prev = append(prev[:0], full...)
		count++
	}
	return cr.finish(count)
}
