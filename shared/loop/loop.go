// Package loop runs the periodic background loops of centra's servers
// (lease expiry, lag and disk monitors, split checks, compaction, ...),
// so that each loop is its body alone and every one of them stops the same
// way when its context ends.
package loop

import (
	"context"
	"time"
)

// Every calls fn with the tick's time every d until ctx ends. The first
// call comes after d, not at once; a call that takes longer than d delays
// the next one (ticks are dropped, never queued); no call starts once ctx
// has ended. d must be positive.
func Every(ctx context.Context, d time.Duration, fn func(now time.Time)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if ctx.Err() != nil {
				return // both ready: select picked the tick
			}
			fn(now)
		}
	}
}
