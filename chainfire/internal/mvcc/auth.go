package mvcc

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Kinds of auth records (after tagAuth): the record's value is etcd's
// authpb.User or authpb.Role, the name follows the kind.
const (
	AuthUser = 'u'
	AuthRole = 'r'
)

// AuthMeta is whether auth is enabled and the auth revision (etcd's auth
// bucket), one record: a byte (1 = enabled) + be64(revision); absent means
// disabled at revision 0.
type AuthMeta struct {
	Enabled  bool
	Revision uint64
}

// LoadAuthMeta reads the auth meta record.
func (s *Store) LoadAuthMeta(r pebble.Reader) (AuthMeta, error) {
	v, closer, err := r.Get(s.full(metaKey(metaAuth)))
	if errors.Is(err, pebble.ErrNotFound) {
		return AuthMeta{}, nil
	}
	if err != nil {
		return AuthMeta{}, err
	}
	defer closer.Close()
	if len(v) != 9 {
		return AuthMeta{}, fmt.Errorf("mvcc: malformed auth meta record %x", v)
	}
	return AuthMeta{Enabled: v[0] == 1, Revision: uint64FromBE(v[1:])}, nil
}

// SetAuthMeta writes the auth meta record.
func (s *Store) SetAuthMeta(w pebble.Writer, m AuthMeta) error {
	v := []byte{0}
	if m.Enabled {
		v[0] = 1
	}
	return w.Set(s.full(metaKey(metaAuth)), putBE64(v, m.Revision), nil)
}

func authKey(kind byte, name string) []byte {
	return append([]byte{tagAuth, kind}, name...)
}

// SetAuthRecord writes the user or role record name of kind; a nil value
// deletes it.
func (s *Store) SetAuthRecord(w pebble.Writer, kind byte, name string, value []byte) error {
	if value == nil {
		return w.Delete(s.full(authKey(kind, name)), nil)
	}
	return w.Set(s.full(authKey(kind, name)), value, nil)
}

// AuthRecords calls fn with every record of kind, in name order.
func (s *Store) AuthRecords(r pebble.Reader, kind byte, fn func(name string, value []byte) error) error {
	p := s.full(authKey(kind, ""))
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(string(it.Key()[len(p):]), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}
