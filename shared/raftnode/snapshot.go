package raftnode

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/lni/dragonboat/v4/statemachine"
)

// Snapshot stream, version 1 (see DESIGN.md):
//
//	header  "RNSNAP" version:u8=1 shardID:be64
//	pair*   0x01 keyLen:be32 key valueLen:be32 value
//	trailer 0x00 pairCount:be64 crc:be32
//
// Keys are relative to the shard prefix ('s' be64(shardID) removed), so
// they start with the subspace byte. crc is CRC-32C (Castagnoli) of every
// byte before it.
var snapshotMagic = [6]byte{'R', 'N', 'S', 'N', 'A', 'P'}

const (
	snapshotV1      byte = 1
	snapshotTagPair byte = 0x01
	snapshotTagEnd  byte = 0x00
	// snapshotDoneCheck is how many pairs are written or read between
	// checks of the done channel.
	snapshotDoneCheck = 256
	// maxSnapshotKey and maxSnapshotValue bound lengths read from a stream,
	// so a corrupt length fails instead of exhausting memory.
	maxSnapshotKey   = 1 << 20
	maxSnapshotValue = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func stopped(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// writeSnapshot streams every key of ks's shard visible in r to w.
func writeSnapshot(w io.Writer, r pebble.Reader, ks Keyspace, done <-chan struct{}) error {
	sw := newStreamWriter(w)
	out := sw.out
	if err := sw.header(ks, snapshotV1); err != nil {
		return err
	}
	lower, upper := ks.ShardBounds()
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("raftnode: shard %d: snapshot iterator: %w", ks.shardID, err)
	}
	defer it.Close()
	var count uint64
	var lens [4]byte
	for valid := it.First(); valid; valid = it.Next() {
		if count%snapshotDoneCheck == 0 && stopped(done) {
			return statemachine.ErrSnapshotStopped
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("raftnode: shard %d: snapshot read value: %w", ks.shardID, err)
		}
		key := it.Key()[shardPrefixSz:]
		if _, err := out.Write([]byte{snapshotTagPair}); err != nil {
			return err
		}
		for _, field := range [][]byte{key, v} {
			binary.BigEndian.PutUint32(lens[:], uint32(len(field)))
			if _, err := out.Write(lens[:]); err != nil {
				return err
			}
			if _, err := out.Write(field); err != nil {
				return err
			}
		}
		count++
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("raftnode: shard %d: snapshot iteration: %w", ks.shardID, err)
	}
	return sw.finish(count)
}

// streamWriter writes a snapshot stream: buffered, with a running CRC-32C
// of everything up to the trailer.
type streamWriter struct {
	bw  *bufio.Writer
	crc hash.Hash32
	out io.Writer // writes to bw and the CRC
}

func newStreamWriter(w io.Writer) *streamWriter {
	bw := bufio.NewWriterSize(w, 64<<10)
	crc := crc32.New(castagnoli)
	return &streamWriter{bw: bw, crc: crc, out: io.MultiWriter(bw, crc)}
}

// finish writes the trailer (end tag and pair count, under the CRC), then
// the CRC itself, and flushes.
func (s *streamWriter) finish(count uint64) error {
	var trailer [1 + 8]byte
	trailer[0] = snapshotTagEnd
	binary.BigEndian.PutUint64(trailer[1:], count)
	if _, err := s.out.Write(trailer[:]); err != nil {
		return err
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], s.crc.Sum32())
	if _, err := s.bw.Write(sum[:]); err != nil {
		return err
	}
	return s.bw.Flush()
}

// crcReader hashes everything read through it.
type crcReader struct {
	r   io.Reader
	crc hash.Hash32
}

// Read implements io.Reader.
func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc.Write(p[:n])
	return n, err
}

// corrupt wraps a framing error in ErrCorruptSnapshot; a truncated stream
// counts as corrupt.
// finish reads the trailer that follows the end tag (the pair count, under
// the CRC) and the CRC itself, and checks both against what was read.
func (cr *crcReader) finish(count uint64) error {
	var n [8]byte
	if err := readFull(cr, n[:], "trailer"); err != nil {
		return err
	}
	want := cr.crc.Sum32()
	var sum [4]byte
	if err := readFull(cr.r, sum[:], "checksum"); err != nil {
		return err
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return corrupt("checksum %08x, computed %08x", got, want)
	}
	if c := binary.BigEndian.Uint64(n[:]); c != count {
		return corrupt("trailer counts %d pairs, stream has %d", c, count)
	}
	return nil
}

// header writes the stream header: magic, version v, be64 shard ID.
func (sw *streamWriter) header(ks Keyspace, v byte) error {
	var hdr [len(snapshotMagic) + 1 + 8]byte
	copy(hdr[:], snapshotMagic[:])
	hdr[len(snapshotMagic)] = v
	binary.BigEndian.PutUint64(hdr[len(snapshotMagic)+1:], ks.shardID)
	_, err := sw.out.Write(hdr[:])
	return err
}

// readHeader starts reading a stream for ks's shard: it checks the magic,
// that the version is want (else an ErrUnknownFormat naming who reads which
// version and the fix) and the shard ID, and returns the CRC-tracking
// reader positioned after the header.
func readHeader(r io.Reader, ks Keyspace, want byte, reader, fix string) (*crcReader, error) {
	cr := &crcReader{r: bufio.NewReaderSize(r, 64<<10), crc: crc32.New(castagnoli)}
	var hdr [len(snapshotMagic) + 1 + 8]byte
	if err := readFull(cr, hdr[:], "header"); err != nil {
		return nil, err
	}
	if !bytes.Equal(hdr[:len(snapshotMagic)], snapshotMagic[:]) {
		return nil, corrupt("bad magic %q", hdr[:len(snapshotMagic)])
	}
	if v := hdr[len(snapshotMagic)]; v != want {
		return nil, fmt.Errorf("%w: snapshot stream version %d, %s reads version %d; %s", ErrUnknownFormat, v, reader, want, fix)
	}
	if id := binary.BigEndian.Uint64(hdr[len(snapshotMagic)+1:]); id != ks.shardID {
		return nil, corrupt("stream is for shard %d, not %d", id, ks.shardID)
	}
	return cr, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
}

func readFull(r io.Reader, buf []byte, what string) error {
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corrupt("truncated in %s", what)
		}
		return err
	}
	return nil
}

// readField reads one length-prefixed field (be32 length, then the bytes)
// into buf, rejecting lengths above limit as corrupt.
func readField(r io.Reader, lens *[4]byte, buf *bytes.Buffer, limit uint32, what string) error {
	if err := readFull(r, lens[:], what+" length"); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(lens[:])
	if n > limit {
		return corrupt("%s length %d exceeds %d", what, n, limit)
	}
	buf.Reset()
	// CopyN grows buf as data arrives, so a corrupt length cannot allocate
	// more than the stream holds.
	if _, err := io.CopyN(buf, r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			return corrupt("truncated in %s", what)
		}
		return err
	}
	return nil
}

// readSnapshot stages the pairs of a stream written by writeSnapshot for
// ks's shard into b and verifies the trailer. b must not be committed when
// it returns an error.
func readSnapshot(r io.Reader, ks Keyspace, b *pebble.Batch, done <-chan struct{}) error {
	cr, err := readHeader(r, ks, snapshotV1, "this binary", "upgrade the receiving node")
	if err != nil {
		return err
	}
	var (
		count  uint64
		tag    [1]byte
		lens   [4]byte
		keyBuf bytes.Buffer
		valBuf bytes.Buffer
		full   []byte
	)
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
		if tag[0] != snapshotTagPair {
			return corrupt("unknown tag 0x%02x after %d pairs", tag[0], count)
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
		full = append(append(full[:0], ks.prefix[:]...), keyBuf.Bytes()...)
		if err := b.Set(full, valBuf.Bytes(), nil); err != nil {
			return fmt.Errorf("raftnode: shard %d: stage snapshot pair: %w", ks.shardID, err)
		}
		count++
	}
	return cr.finish(count)
}
