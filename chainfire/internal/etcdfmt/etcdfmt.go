// Package etcdfmt reads and writes etcd's v3 snapshot file: the bbolt
// database of an etcd member (what `etcdctl snapshot save` stores and
// `etcdctl snapshot restore` reads) followed by the SHA-256 of the bytes
// before it.
//
// Only what etcd needs to rebuild its MVCC store is written: the "key"
// bucket (revision -> mvccpb.KeyValue, the revision as be64(main) '_'
// be64(sub), plus 't' for a deletion), the "lease" bucket (be64(id) ->
// leasepb.Lease), the "meta" bucket (consistent_index, and the compacted
// revision as finishedCompactRev/scheduledCompactRev) and the auth buckets
// ("auth": authEnabled, authRevision; "authUsers" and "authRoles": name ->
// authpb.User / authpb.Role). etcd's restore replaces membership, so
// members are not written; reading ignores every other bucket (alarms,
// cluster version).
package etcdfmt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/gen/mvccpb"
)

// Bucket and meta key names of etcd's backend (server/storage/schema).
var (
	bucketKey   = []byte("key")
	bucketLease = []byte("lease")
	bucketMeta  = []byte("meta")
	bucketAuth  = []byte("auth")
	bucketUsers = []byte("authUsers")
	bucketRoles = []byte("authRoles")

	authEnabledKey  = []byte("authEnabled")
	authRevisionKey = []byte("authRevision")

	metaConsistentIndex = []byte("consistent_index")
	metaFinishedCompact = []byte("finishedCompactRev")
	metaScheduleCompact = []byte("scheduledCompactRev")
)

// revBytesLen is the length of a revision key: be64 main, '_', be64 sub.
const revBytesLen = 17

// tombstone marks a deletion's revision key.
const tombstone = 't'

// Version is one record of the key bucket: a put (KV complete) or a
// deletion (Deleted, KV with only Key) at revision Main/Sub.
type Version struct {
	Main, Sub int64
	Deleted   bool
	KV        *mvccpb.KeyValue
}

// Lease is a lease record.
type Lease struct{ ID, TTL int64 }

func revKey(main, sub int64, deleted bool) []byte {
	k := make([]byte, revBytesLen, revBytesLen+1)
	binary.BigEndian.PutUint64(k, uint64(main))
	k[8] = '_'
	binary.BigEndian.PutUint64(k[9:], uint64(sub))
	if deleted {
		k = append(k, tombstone)
	}
	return k
}

// Writer builds a snapshot file. Add versions and leases, then Close.
type Writer struct {
	db      *bolt.DB
	path    string
	pending []func(*bolt.Tx) error
}

// batch bounds the puts of one bbolt transaction.
const batch = 10000

// NewWriter creates the bbolt file at path (which must not exist).
func NewWriter(path string) (*Writer, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("etcdfmt: %s exists", path)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("etcdfmt: create %s: %w", path, err)
	}
	w := &Writer{db: db, path: path}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketKey, bucketLease, bucketMeta, bucketAuth, bucketUsers, bucketRoles} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return w, nil
}

func (w *Writer) put(bucket, k, v []byte) error {
	w.pending = append(w.pending, func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(k, v) })
	if len(w.pending) >= batch {
		return w.flush()
	}
	return nil
}

func (w *Writer) flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	err := w.db.Update(func(tx *bolt.Tx) error {
		for _, fn := range w.pending {
			if err := fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	w.pending = w.pending[:0]
	return err
}

// AddVersion records one key version.
func (w *Writer) AddVersion(v Version) error {
	kv := v.KV
	if v.Deleted {
		kv = &mvccpb.KeyValue{Key: v.KV.Key}
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(kv)
	if err != nil {
		return err
	}
	return w.put(bucketKey, revKey(v.Main, v.Sub, v.Deleted), data)
}

// AddLease records a lease (leasepb.Lease: ID, TTL).
func (w *Writer) AddLease(l Lease) error {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(l.ID))
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(l.TTL))
	return w.put(bucketLease, binary.BigEndian.AppendUint64(nil, uint64(l.ID)), b)
}

// Auth is etcd's auth state: enabled, its revision, and the users and
// roles as encoded authpb.User and authpb.Role by name.
type Auth struct {
	Enabled      bool
	Revision     uint64
	Users, Roles map[string][]byte
}

// SetAuth records the auth state (etcd's auth buckets).
func (w *Writer) SetAuth(a Auth) error {
	enabled := []byte{0}
	if a.Enabled {
		enabled[0] = 1
	}
	err := w.put(bucketAuth, authEnabledKey, enabled)
	if err == nil {
		err = w.put(bucketAuth, authRevisionKey, binary.BigEndian.AppendUint64(nil, a.Revision))
	}
	for bucket, recs := range map[string]map[string][]byte{string(bucketUsers): a.Users, string(bucketRoles): a.Roles} {
		for name, v := range recs {
			if err == nil {
				err = w.put([]byte(bucket), []byte(name), v)
			}
		}
	}
	return err
}

// Close writes the meta bucket, closes the database and appends the
// SHA-256 of the file, as etcd's snapshot does.
func (w *Writer) Close(consistentIndex uint64, compacted int64) error {
	err := w.put(bucketMeta, metaConsistentIndex, binary.BigEndian.AppendUint64(nil, consistentIndex))
	if err == nil && compacted > 0 {
		if err = w.put(bucketMeta, metaFinishedCompact, revKey(compacted, 0, false)); err == nil {
			err = w.put(bucketMeta, metaScheduleCompact, revKey(compacted, 0, false))
		}
	}
	if err == nil {
		err = w.flush()
	}
	if err == nil {
		err = w.db.Sync()
	}
	if cerr := w.db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("etcdfmt: write %s: %w", w.path, err)
	}
	return appendHash(w.path)
}

// Abort closes and removes an unfinished file.
func (w *Writer) Abort() {
	w.db.Close()
	os.Remove(w.path)
}

func appendHash(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if _, err := f.Write(h.Sum(nil)); err != nil {
		return err
	}
	return f.Sync()
}

// ErrHashMismatch: the file's trailing SHA-256 does not match its content.
var ErrHashMismatch = errors.New("etcdfmt: snapshot SHA-256 mismatch: the file is truncated or corrupt")

// VerifyHash checks the trailing SHA-256 of a snapshot file. A file whose
// size is a whole number of 512-byte pages has none (a db file copied out of
// a member's data directory, etcd's --skip-hash-check case): hasHash false.
func VerifyHash(path string) (hasHash bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	size := st.Size()
	if size%512 != sha256.Size {
		return false, nil
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, size-sha256.Size); err != nil {
		return true, err
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, want); err != nil {
		return true, err
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return true, ErrHashMismatch
	}
	return true, nil
}

// Contents is what a snapshot holds, read by Read.
type Contents struct {
	// Compacted is the compacted revision (0: never compacted).
	Compacted int64
	// ConsistentIndex is the raft index the snapshot was taken at.
	ConsistentIndex uint64
	Leases          []Lease
	// Auth is the auth state (zero when the file has none).
	Auth Auth
}

// readAuth reads etcd's auth buckets, if any.
func readAuth(tx *bolt.Tx) (Auth, error) {
	a := Auth{Users: map[string][]byte{}, Roles: map[string][]byte{}}
	if ab := tx.Bucket(bucketAuth); ab != nil {
		a.Enabled = bytes.Equal(ab.Get(authEnabledKey), []byte{1})
		if v := ab.Get(authRevisionKey); len(v) == 8 {
			a.Revision = binary.BigEndian.Uint64(v)
		}
	}
	for name, recs := range map[string]map[string][]byte{string(bucketUsers): a.Users, string(bucketRoles): a.Roles} {
		b := tx.Bucket([]byte(name))
		if b == nil {
			continue
		}
		if err := b.ForEach(func(k, v []byte) error {
			recs[string(k)] = bytes.Clone(v)
			return nil
		}); err != nil {
			return a, err
		}
	}
	return a, nil
}

// Read opens the snapshot (its hash must have been checked) read-only and
// calls fn for every version in revision order, then returns the rest.
func Read(path string, fn func(Version) error) (Contents, error) {
	var c Contents
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true})
	if err != nil {
		return c, fmt.Errorf("etcdfmt: open %s (not an etcd snapshot?): %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		kb := tx.Bucket(bucketKey)
		if kb == nil {
			return fmt.Errorf("etcdfmt: %s has no %q bucket: not an etcd v3 snapshot", path, bucketKey)
		}
		if mb := tx.Bucket(bucketMeta); mb != nil {
			if v := mb.Get(metaFinishedCompact); len(v) >= 8 {
				c.Compacted = int64(binary.BigEndian.Uint64(v))
			}
			if v := mb.Get(metaConsistentIndex); len(v) == 8 {
				c.ConsistentIndex = binary.BigEndian.Uint64(v)
			}
		}
		var err error
		if c.Auth, err = readAuth(tx); err != nil {
			return err
		}
		if lb := tx.Bucket(bucketLease); lb != nil {
			if err := lb.ForEach(func(_, v []byte) error {
				l, err := parseLease(v)
				c.Leases = append(c.Leases, l)
				return err
			}); err != nil {
				return err
			}
		}
		return kb.ForEach(func(k, v []byte) error {
			if len(k) < revBytesLen || k[8] != '_' || len(k) > revBytesLen+1 {
				return fmt.Errorf("etcdfmt: malformed revision key %x", k)
			}
			kv := &mvccpb.KeyValue{}
			if err := proto.Unmarshal(v, kv); err != nil {
				return fmt.Errorf("etcdfmt: decode the key-value at revision %x: %w", k, err)
			}
			return fn(Version{
				Main: int64(binary.BigEndian.Uint64(k)), Sub: int64(binary.BigEndian.Uint64(k[9:])),
				Deleted: len(k) == revBytesLen+1 && k[revBytesLen] == tombstone, KV: kv,
			})
		})
	})
	return c, err
}

// parseLease decodes leasepb.Lease's ID (1) and TTL (2).
func parseLease(b []byte) (Lease, error) {
	var l Lease
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return l, fmt.Errorf("etcdfmt: malformed lease record: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.VarintType {
			n = protowire.ConsumeFieldValue(num, typ, b)
		} else {
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			switch num {
			case 1:
				l.ID = int64(v)
			case 2:
				l.TTL = int64(v)
			}
		}
		if n < 0 {
			return l, fmt.Errorf("etcdfmt: malformed lease record: %w", protowire.ParseError(n))
		}
		b = b[n:]
	}
	return l, nil
}
