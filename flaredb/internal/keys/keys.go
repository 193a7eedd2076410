// Package keys is FlareDB's key encoding, shared by the store and
// flaredb/client so both agree on where a key lives.
//
// A user key belongs to a namespace. The pair is one key of a single ordered
// space that regions split:
//
//	Encode(ns, key) = escape(ns) 0x00 0x01 key
//
// escape rewrites every 0x00 byte of the namespace as 0x00 0xFF, so no
// namespace is a prefix of another's encoding, a namespace is the one
// contiguous range [escape(ns) 0x00 0x01, escape(ns) 0x00 0x02), and keys
// sort bytewise inside it. Region start and end keys are encoded keys; an
// empty end key means +infinity. In the store's pebble DB a data key is
// DataTag followed by the encoded key.
package keys

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

const (
	// DefaultNamespace is used when a request names none.
	DefaultNamespace = "default"
	// MaxNamespaceLen bounds a namespace name, in bytes.
	MaxNamespaceLen = 128
	// DataTag starts every data key in the store's pebble DB.
	DataTag byte = 'd'
	// MaxBatchKeys is the most keys one BatchGet or BatchPut request may
	// carry (the store refuses more; the client splits BatchGet).
	MaxBatchKeys = 10_000
)

// Namespace returns ns, or DefaultNamespace when ns is empty, after
// checking it is valid UTF-8 of at most MaxNamespaceLen bytes.
func Namespace(ns string) (string, error) {
	if ns == "" {
		return DefaultNamespace, nil
	}
	if len(ns) > MaxNamespaceLen {
		return "", fmt.Errorf("namespace %.32q... is %d bytes; the limit is %d", ns, len(ns), MaxNamespaceLen)
	}
	if !utf8.ValidString(ns) {
		return "", fmt.Errorf("namespace %q is not valid UTF-8", ns)
	}
	return ns, nil
}

// appendPrefix appends escape(ns) 0x00 to dst.
func appendPrefix(dst []byte, ns string) []byte {
	for i := 0; i < len(ns); i++ {
		if ns[i] == 0 {
			dst = append(dst, 0, 0xFF)
			continue
		}
		dst = append(dst, ns[i])
	}
	return append(dst, 0)
}

// Encode returns the encoded key of key in namespace ns.
func Encode(ns string, key []byte) []byte {
	return AppendEncoded(make([]byte, 0, len(ns)+2+len(key)), ns, key)
}

// AppendEncoded appends Encode(ns, key) to dst.
func AppendEncoded(dst []byte, ns string, key []byte) []byte {
	dst = appendPrefix(dst, ns)
	dst = append(dst, 1)
	return append(dst, key...)
}

// NamespaceRange is the encoded range [start, end) holding every key of ns.
func NamespaceRange(ns string) (start, end []byte) {
	start = append(appendPrefix(nil, ns), 1)
	end = append(appendPrefix(nil, ns), 2)
	return start, end
}

// Range encodes the user range [start, end) of ns; an empty end means the
// end of the namespace.
func Range(ns string, start, end []byte) (encStart, encEnd []byte) {
	encStart = Encode(ns, start)
	if len(end) == 0 {
		_, encEnd = NamespaceRange(ns)
		return encStart, encEnd
	}
	return encStart, Encode(ns, end)
}

// Decode splits an encoded key into namespace and user key (sharing enc's
// memory). ok is false when enc is not an encoded key.
func Decode(enc []byte) (ns string, key []byte, ok bool) {
	var b []byte
	for i := 0; i < len(enc); i++ {
		if enc[i] != 0 {
			b = append(b, enc[i])
			continue
		}
		if i+1 >= len(enc) {
			return "", nil, false
		}
		switch enc[i+1] {
		case 0xFF:
			b = append(b, 0)
			i++
		case 1:
			return string(b), enc[i+2:], true
		default:
			return "", nil, false
		}
	}
	return "", nil, false
}

// Data returns the pebble key of an encoded key.
func Data(enc []byte) []byte {
	return append(append(make([]byte, 0, 1+len(enc)), DataTag), enc...)
}

// DataRange returns the pebble bounds of the encoded range [start, end);
// an empty end means the end of the data keyspace.
func DataRange(start, end []byte) (lower, upper []byte) {
	lower = Data(start)
	if len(end) == 0 {
		return lower, []byte{DataTag + 1}
	}
	return lower, Data(end)
}

// InRange reports whether the encoded key lies in [start, end) (empty end:
// unbounded).
func InRange(enc, start, end []byte) bool {
	return bytes.Compare(enc, start) >= 0 && (len(end) == 0 || bytes.Compare(enc, end) < 0)
}

// Clamp intersects [start, end) with the region range [rs, re) (empty ends
// unbounded). ok is false when the intersection is empty.
func Clamp(start, end, rs, re []byte) (s, e []byte, ok bool) {
	s, e = start, end
	if bytes.Compare(rs, s) > 0 {
		s = rs
	}
	if len(re) > 0 && (len(e) == 0 || bytes.Compare(re, e) < 0) {
		e = re
	}
	return s, e, len(e) == 0 || bytes.Compare(s, e) < 0
}
