//go:build e2e

package framework

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWaitForCtx checks the poll helper: it returns nil once cond holds,
// and when ctx ends first it returns cond's last error wrapped with ctx's.
func TestWaitForCtx(t *testing.T) {
	calls := 0
	if err := WaitForCtx(t.Context(), func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || calls != 3 {
		t.Fatalf("WaitForCtx = %v after %d calls, want nil after 3", err, calls)
	}

	errLast := errors.New("still not")
	ctx, cancel := context.WithTimeout(t.Context(), 3*pollTick)
	defer cancel()
	err := WaitForCtx(ctx, func() error { return errLast })
	if !errors.Is(err, errLast) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForCtx on an ending ctx = %v, want %v wrapped with %v", err, errLast, context.DeadlineExceeded)
	}

	if err := WaitFor(func() error { return errLast }, time.Millisecond); !errors.Is(err, errLast) {
		t.Fatalf("WaitFor = %v, want %v", err, errLast)
	}
}
