package mvcc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// maxCheckProblems bounds the problems Check lists; a damaged store could
// otherwise produce one per key.
const maxCheckProblems = 20

// CheckStats is what Check read.
type CheckStats struct {
	Meta               Meta
	Versions, RevIndex int
}

// Check verifies the invariants of the store that hold at every point of
// the apply and compaction paths (DESIGN.md "Storage layout"):
//   - compacted <= revision, and physical <= compacted;
//   - every key version decodes and is at or below the revision;
//   - every revision index entry ('r') names a key whose version at that
//     revision exists (compaction drops the index below its revision
//     before the versions);
//   - every version above the compacted revision has its index entry;
//   - every key attached to a lease belongs to a lease that exists.
//
// progress, when set, is called every 10000 records with the records read.
// Problems are returned as sentences; err is for a store that cannot be read.
func (s *Store) Check(r pebble.Reader, progress func(records int)) (CheckStats, []string, error) {
	var st CheckStats
	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < maxCheckProblems {
			problems = append(problems, fmt.Sprintf(format, args...))
		} else if len(problems) == maxCheckProblems {
			problems = append(problems, "more problems not listed")
		}
	}
	m, err := s.LoadMeta(r)
	if err != nil {
		return st, nil, err
	}
	st.Meta = m
	if m.Compacted > m.Revision {
		report("the compacted revision %d is above the current revision %d", m.Compacted, m.Revision)
	}
	if m.Physical > m.Compacted {
		report("history was removed up to revision %d, above the compacted revision %d", m.Physical, m.Compacted)
	}
	records := 0
	tick := func() {
		records++
		if progress != nil && records%10000 == 0 {
			progress(records)
		}
	}
	err = s.scan(r, tagKey, func(k, v []byte) error {
		tick()
		st.Versions++
		_, key, rev, err := splitVersionKey(k)
		if err != nil {
			report("malformed key version record %x: %v", k, err)
			return nil
		}
		if _, err := decodeValue(key, rev, v); err != nil {
			report("the version of %q at revision %d does not decode: %v", key, rev.Main, err)
		}
		if rev.Main > m.Revision {
			report("%q has a version at revision %d, above the current revision %d", key, rev.Main, m.Revision)
		}
		if rev.Main > m.Compacted {
			idx, closer, err := r.Get(s.full(revKey(rev)))
			switch {
			case errors.Is(err, pebble.ErrNotFound):
				report("the version of %q at revision %d has no revision index entry (watch history would skip it)", key, rev.Main)
			case err != nil:
				return err
			default:
				if !bytes.Equal(idx, key) {
					report("the revision index at %d names %q, but the version there is of %q", rev.Main, idx, key)
				}
				closer.Close()
			}
		}
		return nil
	})
	if err != nil {
		return st, problems, err
	}
	err = s.scan(r, tagRev, func(k, v []byte) error {
		tick()
		st.RevIndex++
		rev, err := parseRevKey(k)
		if err != nil {
			report("malformed revision index record %x", k)
			return nil
		}
		_, closer, err := r.Get(s.full(versionKey(v, rev)))
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			report("the revision index at %d names %q, which has no version at that revision", rev.Main, v)
		case err != nil:
			return err
		default:
			closer.Close()
		}
		return nil
	})
	if err != nil {
		return st, problems, err
	}
	leases := map[int64]bool{}
	if err := s.Leases(r, func(id, _ int64) { leases[id] = true }); err != nil {
		return st, problems, err
	}
	err = s.scan(r, tagAttach, func(k, _ []byte) error {
		tick()
		if len(k) < 9 {
			report("malformed lease attachment record %x", k)
			return nil
		}
		if id := int64(uint64FromBE(k[1:9])); !leases[id] {
			report("%q is attached to lease %x, which does not exist", k[9:], id)
		}
		return nil
	})
	return st, problems, err
}

// scan calls fn with the storage suffix and value of every record of one
// tag.
func (s *Store) scan(r pebble.Reader, tag byte, fn func(k, v []byte) error) error {
	p := s.full([]byte{tag})
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := fn(s.strip(it.Key()), v); err != nil {
			return err
		}
	}
	return it.Error()
}
