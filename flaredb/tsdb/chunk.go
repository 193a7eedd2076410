package tsdb

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// sample is one float sample; v keeps its exact bits (staleness markers
// are a NaN payload).
type sample struct {
	t int64
	v float64
}

const (
	chunkFormatV1 = 0x01
	// maxChunkSamples bounds one XOR chunk (its sample count is 16 bits).
	maxChunkSamples = 1 << 15
)

var errBadChunk = errors.New("tsdb: corrupt chunk value")

// encodeChunks encodes sorted samples as a chunk value: the format byte,
// then uvarint-length-prefixed XOR chunks of at most maxChunkSamples.
func encodeChunks(s []sample) ([]byte, error) {
	out := []byte{chunkFormatV1}
	for len(s) > 0 {
		n := min(len(s), maxChunkSamples)
		c := chunkenc.NewXORChunk()
		app, err := c.Appender()
		if err != nil {
			return nil, err
		}
		for _, x := range s[:n] {
			app.Append(0, x.t, x.v)
		}
		out = binary.AppendUvarint(out, uint64(len(c.Bytes())))
		out = append(out, c.Bytes()...)
		s = s[n:]
	}
	return out, nil
}

// decodeChunks appends the samples of a chunk value to dst.
func decodeChunks(dst []sample, b []byte) ([]sample, error) {
	if len(b) == 0 || b[0] != chunkFormatV1 {
		return dst, fmt.Errorf("%w: unknown format", errBadChunk)
	}
	b = b[1:]
	var it chunkenc.Iterator
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return dst, fmt.Errorf("%w: bad length", errBadChunk)
		}
		c, err := chunkenc.FromData(chunkenc.EncXOR, b[k:k+int(n)])
		if err != nil {
			return dst, fmt.Errorf("%w: %v", errBadChunk, err)
		}
		it = c.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			t, v := it.At()
			dst = append(dst, sample{t, v})
		}
		if err := it.Err(); err != nil {
			return dst, fmt.Errorf("%w: %v", errBadChunk, err)
		}
		b = b[k+int(n):]
	}
	return dst, nil
}

// sortDedup sorts samples by time; of equal times the one given last wins.
func sortDedup(s []sample) []sample {
	slices.SortStableFunc(s, func(a, b sample) int { return cmp.Compare(a.t, b.t) })
	out := s[:0]
	for i, x := range s {
		if i+1 < len(s) && s[i+1].t == x.t {
			continue
		}
		out = append(out, x)
	}
	return out
}

// merge returns the union of sorted, deduplicated old and newer; of equal
// times newer wins.
func merge(old, newer []sample) []sample {
	out := make([]sample, 0, len(old)+len(newer))
	i, j := 0, 0
	for i < len(old) && j < len(newer) {
		switch {
		case old[i].t < newer[j].t:
			out = append(out, old[i])
			i++
		case old[i].t > newer[j].t:
			out = append(out, newer[j])
			j++
		default:
			out = append(out, newer[j])
			i++
			j++
		}
	}
	out = append(out, old[i:]...)
	return append(out, newer[j:]...)
}
