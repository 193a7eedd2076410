//go:build e2e && faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// leaseTTL is the checked lease's TTL: longer than most faults, so that
// keepalives through them keep it alive.
const leaseTTL = 4 * time.Second

// keepaliveEvery is how often the lease checker renews its lease and reads
// its key.
const keepaliveEvery = 400 * time.Millisecond

// leaseChecker holds a key under a lease alive with keepalives through the
// faults and checks that lease expiry never deletes it early: a lease
// granted or renewed by a request called at c lives at least until
// c + TTL (the leader counts the TTL from when it handles the request, and
// a new leader extends every lease), so neither a linearizable read
// answering before then may find the key gone, nor a keepalive answered
// before then may find the lease gone. A lease that did expire (no
// keepalive got through for a TTL) is replaced by a new one and a new key
// value.
type leaseChecker struct {
	key string

	mu       sync.Mutex
	problems []string
	checks   int // reads and keepalives that could have caught an early expiry
	leases   int // leases granted
}

// run holds leases until ctx ends.
func (l *leaseChecker) run(ctx context.Context, cli *clientv3.Client) {
	for n := 0; ctx.Err() == nil; n++ {
		l.incarnation(ctx, cli, fmt.Sprintf("lease-%d", n))
	}
}

// incarnation grants a lease, puts the key under it with value and keeps
// both alive until the lease is gone (expired after a fault, which is
// allowed once its guaranteed life ended) or ctx ends.
func (l *leaseChecker) incarnation(ctx context.Context, cli *clientv3.Client, value string) {
	call := time.Now()
	grant, err := do1(ctx, func(ctx context.Context) (*clientv3.LeaseGrantResponse, error) {
		return cli.Grant(ctx, int64(leaseTTL/time.Second))
	})
	if err != nil {
		pause(ctx)
		return
	}
	ttl := time.Duration(grant.TTL) * time.Second
	alive := call.Add(ttl) // the lease lives at least until then
	if _, err := do1(ctx, func(ctx context.Context) (*clientv3.PutResponse, error) {
		return cli.Put(ctx, l.key, value, clientv3.WithLease(grant.ID))
	}); err != nil {
		return // the key may or may not be there: start over
	}
	l.mu.Lock()
	l.leases++
	l.mu.Unlock()
	for ctx.Err() == nil {
		pause(ctx)
		call := time.Now()
		ka, err := do1(ctx, func(ctx context.Context) (*clientv3.LeaseKeepAliveResponse, error) {
			return cli.KeepAliveOnce(ctx, grant.ID)
		})
		switch {
		case err == nil && ka.TTL > 0:
			alive = maxTime(alive, call.Add(ttl))
		case err == nil || isLeaseNotFound(err):
			l.check(time.Now(), alive, "a keepalive found lease %x gone", grant.ID)
			return
		}
		get, err := do1(ctx, func(ctx context.Context) (*clientv3.GetResponse, error) { return cli.Get(ctx, l.key) })
		if err != nil {
			continue
		}
		if len(get.Kvs) == 0 {
			l.check(time.Now(), alive, "a read found key %s (value %q, lease %x) gone", l.key, value, grant.ID)
			return
		}
		if string(get.Kvs[0].Value) != value {
			return // a put of an earlier incarnation with an unknown outcome landed late
		}
		l.mu.Lock()
		l.checks++
		l.mu.Unlock()
	}
}

// check records a problem if something found at ret (an answer's return
// time) to be gone was guaranteed alive until alive.
func (l *leaseChecker) check(ret, alive time.Time, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checks++
	if ret.Before(alive) {
		l.problems = append(l.problems, fmt.Sprintf(format, args...)+fmt.Sprintf(" %v before the end of its guaranteed life", alive.Sub(ret).Round(time.Millisecond)))
	}
}

// do1 runs one request bounded by opTimeout.
func do1[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return f(ctx)
}

// pause waits keepaliveEvery (the checker's period) or until ctx ends.
func pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(keepaliveEvery):
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func isLeaseNotFound(err error) bool { return errors.Is(err, rpctypes.ErrLeaseNotFound) }
