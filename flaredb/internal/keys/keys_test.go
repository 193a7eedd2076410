package keys

import (
	"bytes"
	"sort"
	"testing"
)

func TestEncodeOrderAndRoundTrip(t *testing.T) {
	type nk struct {
		ns  string
		key string
	}
	in := []nk{
		{"a", ""}, {"a", "\x00"}, {"a", "x"}, {"a", "\xff\xff"},
		{"a\x00", "k"}, {"a\x00b", "k"}, {"ab", ""}, {"b", "a"}, {"default", "k"},
	}
	encs := make([][]byte, len(in))
	for i, x := range in {
		encs[i] = Encode(x.ns, []byte(x.key))
		ns, key, ok := Decode(encs[i])
		if !ok || ns != x.ns || string(key) != x.key {
			t.Fatalf("Decode(Encode(%q, %q)) = %q, %q, %v", x.ns, x.key, ns, key, ok)
		}
		s, e := NamespaceRange(x.ns)
		if !InRange(encs[i], s, e) {
			t.Fatalf("Encode(%q, %q) outside its namespace range", x.ns, x.key)
		}
	}
	// Inside a namespace keys sort bytewise; namespaces never interleave.
	sorted := sort.SliceIsSorted(encs, func(i, j int) bool { return bytes.Compare(encs[i], encs[j]) < 0 })
	if !sorted {
		t.Fatalf("encoded keys are not in (namespace, key) order: %q", encs)
	}
	for i := range in {
		for j := range in {
			if in[i].ns == in[j].ns {
				continue
			}
			s, e := NamespaceRange(in[j].ns)
			if InRange(encs[i], s, e) {
				t.Fatalf("key of namespace %q falls in namespace %q", in[i].ns, in[j].ns)
			}
		}
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	for _, b := range []string{"", "abc", "a\x00", "a\x00\x02k"} {
		if _, _, ok := Decode([]byte(b)); ok {
			t.Errorf("Decode(%q) ok, want failure", b)
		}
	}
}

func TestClamp(t *testing.T) {
	s, e, ok := Clamp([]byte("b"), nil, []byte("a"), []byte("c"))
	if !ok || string(s) != "b" || string(e) != "c" {
		t.Fatalf("Clamp = %q %q %v", s, e, ok)
	}
	if _, _, ok := Clamp([]byte("d"), []byte("e"), []byte("a"), []byte("c")); ok {
		t.Fatal("disjoint ranges clamped to a non-empty range")
	}
	s, e, ok = Clamp([]byte("a"), []byte("z"), []byte("c"), nil)
	if !ok || string(s) != "c" || string(e) != "z" {
		t.Fatalf("Clamp = %q %q %v", s, e, ok)
	}
}

func TestNamespace(t *testing.T) {
	if ns, err := Namespace(""); err != nil || ns != DefaultNamespace {
		t.Fatalf("Namespace(\"\") = %q, %v", ns, err)
	}
	if _, err := Namespace(string(make([]byte, MaxNamespaceLen+1))); err == nil {
		t.Fatal("an over-long namespace was accepted")
	}
	if _, err := Namespace("\xff"); err == nil {
		t.Fatal("invalid UTF-8 was accepted")
	}
}
