package client

import (
	"errors"
	"fmt"
	"strings"

	flaredbv1 "github.com/centra-cloud/centra/gen/centra/flaredb/v1"
)

var (
	// ErrNoRegion: PD knows no region holding the key (the cluster has not
	// bootstrapped its first region yet). The client retries on it.
	ErrNoRegion = errors.New("flaredb client: no region holds the key")
	// ErrNoPeer: the region has no peer whose store the client can reach.
	ErrNoPeer = errors.New("flaredb client: region has no reachable peer")
	// ErrIndeterminate: a compare-and-swap was sent but the connection broke
	// before its answer came; it may or may not have been applied.
	ErrIndeterminate = errors.New("flaredb client: the write may or may not have been applied")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("flaredb client: closed")
)

// OpError is the error of an operation that failed: it names the
// operation, the namespace and the key (or range), and unwraps to its cause
// and, when the client gave up retrying, to the last error it saw.
type OpError struct {
	// Op is the operation: get, batch-get, put, batch-put, delete,
	// delete-range, scan, compare-and-swap.
	Op        string
	Namespace string
	// Key is the key, or the start of the range; End is set for ranges.
	Key, End []byte
	Range    bool
	// Keys is the number of keys of a batch (0 otherwise).
	Keys int
	// Region is the last region the operation addressed (0: none yet).
	Region uint64
	// Attempts is how many requests the operation sent to stores.
	Attempts int
	// Err is why the operation stopped: the context's error, the retry
	// budget running out, or an error no retry can fix.
	Err error
	// Last is the last retryable error seen before giving up, if any.
	Last error
}

func (e *OpError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flaredb: %s namespace %q ", e.Op, e.Namespace)
	switch {
	case e.Keys > 0:
		fmt.Fprintf(&b, "%d keys from %s", e.Keys, quoteKey(e.Key))
	case e.Range:
		end := "the end of the namespace"
		if len(e.End) > 0 {
			end = quoteKey(e.End)
		}
		fmt.Fprintf(&b, "range [%s, %s)", quoteKey(e.Key), end)
	default:
		fmt.Fprintf(&b, "key %s", quoteKey(e.Key))
	}
	if e.Region != 0 {
		fmt.Fprintf(&b, " (region %d", e.Region)
		if e.Attempts > 1 {
			fmt.Fprintf(&b, ", %d attempts", e.Attempts)
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if e.Last != nil {
		fmt.Fprintf(&b, "; last error: %v", e.Last)
	}
	return b.String()
}

// Unwrap returns the cause and the last retryable error.
func (e *OpError) Unwrap() []error {
	if e.Last == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Last}
}

// quoteKey quotes a key for a message, shortening long keys.
func quoteKey(k []byte) string {
	const max = 64
	if len(k) > max {
		return fmt.Sprintf("%q...", k[:max])
	}
	return fmt.Sprintf("%q", k)
}

// RegionError is a store's refusal to serve a request in a region
// (centra.flaredb.v1.RegionError). The client retries on it and returns it
// only as the last error of an OpError.
type RegionError struct {
	RegionID uint64
	StoreID  uint64
	Address  string
	Detail   *flaredbv1.RegionError
}

func (e *RegionError) Error() string {
	d := e.Detail
	var what string
	switch {
	case d.GetNotLeader() != nil:
		nl := d.GetNotLeader()
		if nl.GetLeader() == nil {
			what = "not leader, leader unknown"
		} else {
			what = fmt.Sprintf("not leader, leader is peer %d on store %d", nl.GetLeader().GetId(), nl.GetLeader().GetStoreId())
			if nl.GetLeaderAddress() != "" {
				what += " at " + nl.GetLeaderAddress()
			}
		}
	case d.GetEpochNotMatch() != nil:
		what = fmt.Sprintf("epoch not match (the store knows %d current regions)", len(d.GetEpochNotMatch().GetCurrentRegions()))
	case d.GetRegionNotFound() != nil:
		what = "region not found"
	case d.GetKeyNotInRegion() != nil:
		k := d.GetKeyNotInRegion()
		what = fmt.Sprintf("key %s not in region [%s, %s)", quoteKey(k.GetKey()), quoteKey(k.GetStartKey()), quoteKey(k.GetEndKey()))
	case d.GetServerBusy() != nil:
		b := d.GetServerBusy()
		what = fmt.Sprintf("server busy (%s), retry after %d ms", b.GetReason(), b.GetBackoffMs())
	default:
		what = "region error"
	}
	if m := d.GetMessage(); m != "" && !strings.Contains(what, m) {
		what += ": " + m
	}
	return fmt.Sprintf("region %d on store %d (%s): %s", e.RegionID, e.StoreID, e.Address, what)
}

// StoreError is an RPC error from a store (or the connection to it).
type StoreError struct {
	StoreID uint64
	Address string
	Err     error
}

func (e *StoreError) Error() string {
	return fmt.Sprintf("store %d (%s): %v", e.StoreID, e.Address, e.Err)
}

func (e *StoreError) Unwrap() error { return e.Err }
