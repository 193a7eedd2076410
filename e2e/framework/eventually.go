//go:build e2e

package framework

import (
	"testing"
	"time"
)

// Eventually calls cond every 50 ms until it returns nil, and fails the
// test with cond's last error if that does not happen within timeout
// (PD's testutil.Eventually).
func Eventually(t testing.TB, cond func() error, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(pollTick) // the poll tick, not a fixed wait
	}
}

// WaitFor calls cond every 50 ms until it returns nil, and returns cond's
// last error if that does not happen within timeout: Eventually for checks
// that should not stop the test.
func WaitFor(cond func() error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pollTick) // the poll tick, not a fixed wait
	}
}
