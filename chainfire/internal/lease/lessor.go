// Package lease keeps the in-memory side of Chainfire's leases: which leases
// exist and, on the leader, when each one expires.
//
// Leases are granted and revoked through raft, so every replica knows the
// same set of leases and TTLs (the Store persists them). Expiry is decided by
// the leader alone, as in etcd: only the leader (the "primary") tracks
// deadlines, keep-alives renew them in its memory, and it proposes the
// expiry of leases whose deadline passed. A new leader restarts every
// deadline at now+TTL, so a lease never expires early because of a leader
// change, at the cost of living up to one extra TTL.
package lease

import (
	"errors"
	"sort"
	"sync"
	"time"
)

// Errors.
var (
	// ErrNotFound: no such lease, or it already expired.
	ErrNotFound = errors.New("lease: requested lease not found")
	// ErrNotPrimary: the call needs the leader's lessor.
	ErrNotPrimary = errors.New("lease: not the leader")
)

type entry struct {
	ttl    int64
	expiry time.Time
}

// Lessor tracks leases in memory. It is safe for concurrent use.
type Lessor struct {
	now func() time.Time

	mu       sync.Mutex
	leases   map[int64]*entry
	primary  bool
	revoking map[int64]bool
}

// New returns an empty lessor that reads time from now (time.Now when nil).
func New(now func() time.Time) *Lessor {
	if now == nil {
		now = time.Now
	}
	return &Lessor{now: now, leases: map[int64]*entry{}, revoking: map[int64]bool{}}
}

// Reset replaces the known leases (id -> TTL seconds), e.g. after loading a
// snapshot. On the primary every deadline restarts at now+TTL.
func (l *Lessor) Reset(leases map[int64]int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leases = make(map[int64]*entry, len(leases))
	l.revoking = map[int64]bool{}
	now := l.now()
	for id, ttl := range leases {
		l.leases[id] = &entry{ttl: ttl, expiry: deadline(now, ttl)}
	}
}

func deadline(now time.Time, ttl int64) time.Time {
	return now.Add(time.Duration(ttl) * time.Second)
}

// Granted records a lease granted through raft.
func (l *Lessor) Granted(id, ttl int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leases[id] = &entry{ttl: ttl, expiry: deadline(l.now(), ttl)}
}

// Revoked forgets a lease revoked or expired through raft.
func (l *Lessor) Revoked(id int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.leases, id)
	delete(l.revoking, id)
}

// Promote makes this lessor the primary: every deadline restarts at
// now+TTL.
func (l *Lessor) Promote() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, e := range l.leases {
		e.expiry = deadline(now, e.ttl)
	}
	l.primary = true
	l.revoking = map[int64]bool{}
}

// Demote stops deadline tracking (leadership was lost).
func (l *Lessor) Demote() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.primary = false
}

// IsPrimary reports whether this lessor tracks deadlines.
func (l *Lessor) IsPrimary() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.primary
}

// Renew restarts the deadline of lease id and returns its TTL.
func (l *Lessor) Renew(id int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.primary {
		return 0, ErrNotPrimary
	}
	e, ok := l.leases[id]
	now := l.now()
	if !ok || l.revoking[id] || now.After(e.expiry) {
		return 0, ErrNotFound
	}
	e.expiry = deadline(now, e.ttl)
	return e.ttl, nil
}

// Remaining returns the granted TTL and the seconds left of lease id.
func (l *Lessor) Remaining(id int64) (granted, remaining int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.primary {
		return 0, 0, ErrNotPrimary
	}
	e, ok := l.leases[id]
	if !ok {
		return 0, 0, ErrNotFound
	}
	left := e.expiry.Sub(l.now())
	if left < 0 {
		left = 0
	}
	return e.ttl, int64((left + time.Second - 1) / time.Second), nil
}

// Expired returns up to max leases whose deadline passed and marks them as
// being revoked, so they are not returned again until Unmark or Revoked.
func (l *Lessor) Expired(max int) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.primary {
		return nil
	}
	now := l.now()
	var ids []int64
	for id, e := range l.leases {
		if len(ids) >= max {
			break
		}
		if !l.revoking[id] && now.After(e.expiry) {
			ids = append(ids, id)
			l.revoking[id] = true
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// Unmark makes leases eligible for Expired again (their expiry proposal
// failed).
func (l *Lessor) Unmark(ids []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		delete(l.revoking, id)
	}
}
