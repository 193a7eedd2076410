package mvcc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// SysKV is one key of the system keyspace: a plain versioned key-value map
// beside the MVCC keyspace, for the placement driver's state. It has no
// history and is invisible to KV range reads and watches.
type SysKV struct {
	Key, Value []byte
	Version    uint64
}

func (s *Store) sysKey(key []byte) []byte {
	return s.full(append([]byte{tagSystem}, key...))
}

// SysGet returns the system key (Version 0 when absent).
func (s *Store) SysGet(r pebble.Reader, key []byte) (SysKV, error) {
	v, closer, err := r.Get(s.sysKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return SysKV{Key: bytes.Clone(key)}, nil
	}
	if err != nil {
		return SysKV{}, err
	}
	defer closer.Close()
	return decodeSys(key, v)
}

func decodeSys(key, v []byte) (SysKV, error) {
	if len(v) < 8 {
		return SysKV{}, fmt.Errorf("mvcc: system key %q has a %d-byte record, want >= 8", key, len(v))
	}
	return SysKV{Key: bytes.Clone(key), Version: uint64FromBE(v[:8]), Value: bytes.Clone(v[8:])}, nil
}

// SysList returns every system key with the prefix, in key order.
func (s *Store) SysList(r pebble.Reader, prefix []byte) ([]SysKV, error) {
	lower := s.sysKey(prefix)
	upper := prefixEnd(lower)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	skip := len(s.prefix) + 1
	var out []SysKV
	for ok := it.First(); ok; ok = it.Next() {
		kv, err := decodeSys(it.Key()[skip:], it.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, kv)
	}
	return out, it.Error()
}

// SysPut writes a system key at version+1 into b, reading the current
// version through b.
func (s *Store) SysPut(b *pebble.Batch, key, value []byte) error {
	cur, err := s.SysGet(b, key)
	if err != nil {
		return err
	}
	rec := putBE64(make([]byte, 0, 8+len(value)), cur.Version+1)
	return b.Set(s.sysKey(key), append(rec, value...), nil)
}

// SysDelete removes a system key.
func (s *Store) SysDelete(w pebble.Writer, key []byte) error {
	return w.Delete(s.sysKey(key), nil)
}
