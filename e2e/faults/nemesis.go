//go:build e2e && faults

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// faultKind is one nemesis action.
type faultKind int

const (
	killLeader faultKind = iota
	killRandom
	pauseLeader
	pauseRandom
	numFaultKinds
)

func (k faultKind) String() string {
	return [...]string{"kill-leader", "kill-random", "pause-leader", "pause-random"}[k]
}

// fault is one scheduled action: at At after traffic starts, Kind hits a
// node for Hold (a killed node stays down for Hold, a paused one frozen).
// Node is the random node's index (ignored for the leader kinds).
type fault struct {
	At   time.Duration
	Kind faultKind
	Node int
	Hold time.Duration
}

func (f fault) String() string {
	target := "leader"
	if f.Kind == killRandom || f.Kind == pauseRandom {
		target = fmt.Sprintf("node %d", f.Node+1) // the framework's node names count from 1
	}
	return fmt.Sprintf("t=%v %s (%s) hold %v", f.At.Round(time.Millisecond), f.Kind, target, f.Hold.Round(time.Millisecond))
}

// schedule draws a fault schedule for a run of length d on n nodes from
// seed: a fault every 2-4 s, each held 0.7-2.5 s (longer than the 500 ms
// election timeout of the framework's default ticks), one at a time.
func schedule(seed uint64, n int, d time.Duration) []fault {
	r := rand.New(rand.NewPCG(seed, 0x6661756c7473))
	var out []fault
	at := time.Second
	for {
		f := fault{
			At:   at,
			Kind: faultKind(r.IntN(int(numFaultKinds))),
			Node: r.IntN(n),
			Hold: 700*time.Millisecond + time.Duration(r.Int64N(int64(1800*time.Millisecond))),
		}
		if f.At+f.Hold > d {
			return out
		}
		out = append(out, f)
		at += f.Hold + 2*time.Second + time.Duration(r.Int64N(int64(2*time.Second)))
	}
}

func describeSchedule(s []fault) string {
	lines := make([]string, len(s))
	for i, f := range s {
		lines[i] = "  " + f.String()
	}
	return strings.Join(lines, "\n")
}

// nemesis runs schedule s against c, timed from start; it returns the
// number of faults injected and the first error that left the cluster
// in a state it could not restore.
func nemesis(ctx context.Context, c *framework.Cluster, start time.Time, s []fault) (int, error) {
	injected := 0
	for _, f := range s {
		select {
		case <-ctx.Done():
			return injected, nil
		case <-time.After(time.Until(start.Add(f.At))):
		}
		target := c.Node(f.Node)
		if f.Kind == killLeader || f.Kind == pauseLeader {
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			i, err := c.WaitLeader(lctx)
			cancel()
			if err != nil {
				return injected, fmt.Errorf("%v: %w", f, err)
			}
			target = c.Node(i)
		}
		if err := inject(ctx, f, target); err != nil {
			return injected, fmt.Errorf("%v on %s: %w", f, target, err)
		}
		injected++
	}
	return injected, nil
}

// inject applies f to n, holds it, undoes it and waits until n serves
// reads again.
func inject(ctx context.Context, f fault, n *framework.Node) error {
	switch f.Kind {
	case killLeader, killRandom:
		if err := n.Kill(); err != nil {
			return err
		}
		time.Sleep(f.Hold) // the fault's duration, not a wait for a condition
		if err := n.Restart(); err != nil {
			return err
		}
	default:
		if err := n.Pause(); err != nil {
			return err
		}
		time.Sleep(f.Hold)
		if err := n.Resume(); err != nil {
			return err
		}
	}
	// Recovery outlives the traffic: the run's end must not cut it short.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return n.WaitReady(rctx)
}
