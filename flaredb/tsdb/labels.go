package tsdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// encodeLabels encodes a sorted label set as uvarint-length-prefixed name,
// value, name, value, ... (the value of an S key; its xxhash is the
// series ID).
func encodeLabels(ls labels.Labels) []byte {
	var b []byte
	ls.Range(func(l labels.Label) {
		b = binary.AppendUvarint(b, uint64(len(l.Name)))
		b = append(b, l.Name...)
		b = binary.AppendUvarint(b, uint64(len(l.Value)))
		b = append(b, l.Value...)
	})
	return b
}

var errBadLabels = errors.New("tsdb: corrupt label set")

func decodeLabels(b []byte) (labels.Labels, error) {
	sb := labels.NewScratchBuilder(8)
	for len(b) > 0 {
		var kv [2]string
		for i := range kv {
			n, k := binary.Uvarint(b)
			if k <= 0 || uint64(len(b)-k) < n {
				return labels.EmptyLabels(), errBadLabels
			}
			kv[i] = string(b[k : k+int(n)])
			b = b[k+int(n):]
		}
		sb.Add(kv[0], kv[1])
	}
	return sb.Labels(), nil
}

// seriesID is the first ID tried for a label set (the next ones on a hash
// collision are +1, +2, ...).
func seriesID(enc []byte) uint64 { return xxhash.Sum64(enc) }

// checkLabels validates a label set as it arrives in a write: names
// sorted, unique and non-empty, a metric name, no NUL bytes (they separate
// name and value in index keys).
func checkLabels(ls labels.Labels) error {
	if ls.IsEmpty() {
		return errors.New("a series has no labels")
	}
	if !ls.Has(labels.MetricName) {
		return fmt.Errorf("series %s has no metric name (%s label)", ls, labels.MetricName)
	}
	prev := ""
	var err error
	ls.Range(func(l labels.Label) {
		switch {
		case err != nil:
		case l.Name == "":
			err = fmt.Errorf("series %s has a label with an empty name", ls)
		case l.Name <= prev:
			err = fmt.Errorf("series %s: label names are not sorted or not unique at %q; the sender must sort labels by name", ls, l.Name)
		case strings.IndexByte(l.Name, 0) >= 0 || strings.IndexByte(l.Value, 0) >= 0:
			err = fmt.Errorf("series %s: label %q contains a NUL byte, which this store cannot index", ls, l.Name)
		}
		prev = l.Name
	})
	return err
}
