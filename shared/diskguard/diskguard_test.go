package diskguard

import (
	"errors"
	"strings"
	"testing"
)

// TestGuardThresholdAndResume measures the test directory's real
// filesystem: low below the threshold, with an error naming the directory
// and its free bytes, still low until free space reaches 1.25 times the
// threshold, and never low when disabled.
func TestGuardThresholdAndResume(t *testing.T) {
	dir := t.TempDir()
	free, err := Available(dir)
	if err != nil || free == 0 {
		t.Fatalf("statfs %s: %d free, %v", dir, free, err)
	}
	g, err := New(dir, free/2)
	if err != nil || g.Low() || g.Err() != nil {
		t.Fatalf("threshold half the free space: low %v, err %v, %v", g.Low(), g.Err(), err)
	}
	if err := g.SetMinFree(2 * free); err != nil || !g.Low() {
		t.Fatalf("threshold twice the free space: low %v, %v", g.Low(), err)
	}
	var lse *LowSpaceError
	if err := g.Err(); !errors.As(err, &lse) || lse.Dir != dir || lse.Free == 0 || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error of a low guard: %v", err)
	}
	// Free space above the threshold but below 1.25 times it: still low.
	if err := g.SetMinFree(free * 9 / 10); err != nil || !g.Low() {
		t.Fatalf("free space between threshold and resume level: low %v, %v (free %d)", g.Low(), err, g.Free())
	}
	if err := g.SetMinFree(free / 2); err != nil || g.Low() {
		t.Fatalf("free space above the resume level: low %v, %v", g.Low(), err)
	}
	if err := g.SetMinFree(0); err != nil || g.Low() || g.Err() != nil {
		t.Fatalf("disabled guard: low %v, %v", g.Low(), err)
	}
	var none *Guard
	if none.Low() || none.Err() != nil {
		t.Fatal("a nil guard is low")
	}
	if _, err := New(dir+"/missing", 1); err == nil {
		t.Fatal("a guard of a missing directory measured")
	}
}

// TestUsage checks the statfs behind Available and the store heartbeat: a
// filesystem's capacity is at least what is available, and a missing
// directory is an error naming it.
func TestUsage(t *testing.T) {
	dir := t.TempDir()
	capacity, available, err := Usage(dir)
	if err != nil || available == 0 || capacity < available {
		t.Fatalf("Usage(%s) = capacity %d, available %d, %v", dir, capacity, available, err)
	}
	if _, _, err := Usage(dir + "/missing"); err == nil || !strings.Contains(err.Error(), dir+"/missing") {
		t.Fatalf("Usage of a missing directory: %v, want an error naming it", err)
	}
}
