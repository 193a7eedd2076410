//go:build e2e

package framework

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Eventually calls cond every poll tick (50 ms) until it returns nil, and
// fails the test with cond's last error if that does not happen within
// timeout (PD's testutil.Eventually).
func Eventually(t testing.TB, cond func() error, timeout time.Duration) {
	t.Helper()
	if err := WaitFor(cond, timeout); err != nil {
		t.Fatalf("condition not met within %v: %v", timeout, err)
	}
}

// WaitFor calls cond every poll tick (50 ms) until it returns nil, and
// returns cond's last error if that does not happen within timeout:
// Eventually for checks that should not stop the test.
func WaitFor(cond func() error, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return WaitForCtx(ctx, cond)
}

// WaitForCtx calls cond every poll tick (50 ms) until it returns nil, and
// returns nil then. When ctx ends first, it returns cond's last error
// wrapped with ctx's error, so cond's error should say what was awaited
// and what was seen instead. cond runs at least once, even on an ended
// ctx.
func WaitForCtx(ctx context.Context, cond func() error) error {
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", err, ctx.Err())
		case <-time.After(pollTick): // the poll tick, not a fixed wait
		}
	}
}
