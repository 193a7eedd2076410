package raftnode

import (
	"sync/atomic"

	"github.com/lni/dragonboat/v4/statemachine"
)

// SnapshotLimits caps how many snapshot streams the range state machines
// sharing it send and receive at once, and counts those in flight. For
// on-disk state machines dragonboat calls SaveSnapshot only to stream a
// snapshot to a replica that needs one, so SaveSnapshot is "sending";
// RecoverFromSnapshot (reading the received stream into the state DB) is
// "receiving". A stream over the limit waits (raft keeps the replica behind
// meanwhile); a zero limit means no limit.
type SnapshotLimits struct {
	send, recv           chan struct{}
	sending, receiving   atomic.Int64
	sentTotal, recvTotal atomic.Uint64
}

// NewSnapshotLimits returns limits of maxSend and maxRecv concurrent
// streams (0: unlimited).
func NewSnapshotLimits(maxSend, maxRecv int) *SnapshotLimits {
	l := &SnapshotLimits{}
	if maxSend > 0 {
		l.send = make(chan struct{}, maxSend)
	}
	if maxRecv > 0 {
		l.recv = make(chan struct{}, maxRecv)
	}
	return l
}

// InFlight returns the streams being sent and received now.
func (l *SnapshotLimits) InFlight() (sending, receiving int64) {
	if l == nil {
		return 0, 0
	}
	return l.sending.Load(), l.receiving.Load()
}

// Totals returns how many streams were sent and received completely.
func (l *SnapshotLimits) Totals() (sent, received uint64) {
	if l == nil {
		return 0, 0
	}
	return l.sentTotal.Load(), l.recvTotal.Load()
}

// enter waits for a slot of sem (nil: unlimited) unless done closes first,
// and counts the stream in n. release(streamErr) frees the slot and counts
// a completed stream in total.
func enter(sem chan struct{}, n *atomic.Int64, total *atomic.Uint64, done <-chan struct{}) (release func(err error), err error) {
	if sem != nil {
		select {
		case sem <- struct{}{}:
		case <-done:
			return nil, statemachine.ErrSnapshotStopped
		}
	}
	n.Add(1)
	return func(err error) {
		n.Add(-1)
		if err == nil {
			total.Add(1)
		}
		if sem != nil {
			<-sem
		}
	}, nil
}

func (l *SnapshotLimits) enterSend(done <-chan struct{}) (func(error), error) {
	if l == nil {
		return func(error) {}, nil
	}
	return enter(l.send, &l.sending, &l.sentTotal, done)
}

func (l *SnapshotLimits) enterRecv(done <-chan struct{}) (func(error), error) {
	if l == nil {
		return func(error) {}, nil
	}
	return enter(l.recv, &l.receiving, &l.recvTotal, done)
}
