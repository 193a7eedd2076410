package tsdb

import (
	"encoding/binary"
	"math"
)

// Key layout version 1 (DESIGN.md): every key starts with layoutV1 and a
// kind byte.
const (
	layoutV1 = 0x01

	kindSeries    = 'S' // S id -> label set
	kindIndex     = 'I' // I name 00 value 00 id -> empty
	kindValue     = 'N' // N name 00 value -> empty
	kindName      = 'L' // L name -> empty
	kindRaw       = 'R' // R salt window id ts -> float64 bits
	kindChunk     = 'D' // D salt window id -> chunk value
	kindMeta      = 'M' // M metric -> metadata
	kindWatermark = 'W' // W -> window below which raw keys are compacted

	// windowMs is the span of one chunk window: one hour.
	windowMs = int64(3_600_000)

	idLen = 8
	tsLen = 8
)

// windowOf returns the start of the window holding t (floor).
func windowOf(t int64) int64 {
	w := t - t%windowMs
	if t%windowMs < 0 {
		w -= windowMs
	}
	return w
}

// encTime makes int64 times sort as unsigned bytes (sign bit flipped).
func encTime(b []byte, t int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t)^(1<<63))
}

func decTime(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

func prefix(kind byte, extra int) []byte {
	b := make([]byte, 2, 2+extra)
	b[0], b[1] = layoutV1, kind
	return b
}

// salt is the top byte of a series ID; R and D keys start with it so that
// writes spread over 256 ranges.
func salt(id uint64) byte { return byte(id >> 56) }

func seriesKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(prefix(kindSeries, idLen), id)
}

func seriesPrefix() []byte { return prefix(kindSeries, 0) }

// indexPrefix is the prefix of the index keys of name=value.
func indexPrefix(name, value string) []byte {
	b := append(prefix(kindIndex, len(name)+len(value)+2+idLen), name...)
	b = append(b, 0)
	b = append(b, value...)
	return append(b, 0)
}

func indexKey(name, value string, id uint64) []byte {
	return binary.BigEndian.AppendUint64(indexPrefix(name, value), id)
}

// valuesPrefix is the prefix of the value keys of label name.
func valuesPrefix(name string) []byte {
	return append(append(prefix(kindValue, len(name)+1), name...), 0)
}

func valueKey(name, value string) []byte { return append(valuesPrefix(name), value...) }

func nameKey(name string) []byte { return append(prefix(kindName, len(name)), name...) }

func namesPrefix() []byte { return prefix(kindName, 0) }

func metaKey(metric string) []byte { return append(prefix(kindMeta, len(metric)), metric...) }

func metaPrefix() []byte { return prefix(kindMeta, 0) }

func watermarkKey() []byte { return prefix(kindWatermark, 0) }

// saltedKey builds kind salt window [id [ts]].
func saltedKey(kind, s byte, window int64) []byte {
	b := append(prefix(kind, 1+tsLen+idLen+tsLen), s)
	return encTime(b, window)
}

func rawKey(id uint64, t int64) []byte {
	b := binary.BigEndian.AppendUint64(saltedKey(kindRaw, salt(id), windowOf(t)), id)
	return encTime(b, t)
}

// rawSeriesRange is the range of the raw keys of series id in window w with
// mint <= ts <= maxt (both inside w).
func rawSeriesRange(id uint64, w, mint, maxt int64) (start, end []byte) {
	p := binary.BigEndian.AppendUint64(saltedKey(kindRaw, salt(id), w), id)
	start = encTime(append([]byte(nil), p...), mint)
	if maxt == math.MaxInt64 {
		return start, prefixEnd(p)
	}
	return start, encTime(p, maxt+1)
}

// parseRawKey returns window, ID and timestamp of a raw key.
func parseRawKey(k []byte) (w int64, id uint64, t int64, ok bool) {
	if len(k) != 3+tsLen+idLen+tsLen || k[0] != layoutV1 || k[1] != kindRaw {
		return 0, 0, 0, false
	}
	return decTime(k[3:]), binary.BigEndian.Uint64(k[3+tsLen:]), decTime(k[3+tsLen+idLen:]), true
}

func chunkKey(id uint64, w int64) []byte {
	return binary.BigEndian.AppendUint64(saltedKey(kindChunk, salt(id), w), id)
}

// windowsRange is the range of kind's keys of salt s in windows
// [from, to).
func windowsRange(kind, s byte, from, to int64) (start, end []byte) {
	return saltedKey(kind, s, from), saltedKey(kind, s, to)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xFF: to the end of the namespace
}
