package cli

import (
	"slices"
	"testing"
)

// TestWithServerGODEBUG: serve adds gcshrinkstackoff=1 to GODEBUG, keeping
// the operator's other settings, and leaves GODEBUG alone when it already
// sets gcshrinkstackoff (to anything), so the exec happens at most once.
func TestWithServerGODEBUG(t *testing.T) {
	for _, tc := range []struct {
		env, want []string
		exec      bool
	}{
		{env: []string{"HOME=/root"}, want: []string{"HOME=/root", "GODEBUG=gcshrinkstackoff=1"}, exec: true},
		{env: []string{"GODEBUG=", "A=b"}, want: []string{"GODEBUG=gcshrinkstackoff=1", "A=b"}, exec: true},
		{env: []string{"GODEBUG=madvdontneed=1"}, want: []string{"GODEBUG=madvdontneed=1,gcshrinkstackoff=1"}, exec: true},
		{env: []string{"GODEBUG=madvdontneed=1,gcshrinkstackoff=1"}, want: []string{"GODEBUG=madvdontneed=1,gcshrinkstackoff=1"}},
		{env: []string{"GODEBUG=gcshrinkstackoff=0"}, want: []string{"GODEBUG=gcshrinkstackoff=0"}},
	} {
		in := slices.Clone(tc.env)
		got, exec := withServerGODEBUG(in)
		if exec != tc.exec || !slices.Equal(got, tc.want) {
			t.Errorf("withServerGODEBUG(%q) = %q, %v; want %q, %v", tc.env, got, exec, tc.want, tc.exec)
		}
		if !slices.Equal(in, tc.env) {
			t.Errorf("withServerGODEBUG changed its input to %q", in)
		}
	}
}
