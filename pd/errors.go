package pd

import (
	"errors"
	"fmt"
	"io"

	"github.com/centra-cloud/centra/chainfire/client"
)

// Errors returned by the placement driver. Wrapped errors add context; test
// them with errors.Is.
var (
	// ErrNotLeader: this node does not lead the metadata shard.
	ErrNotLeader = errors.New("pd: not leader")
	// ErrStoreNotFound: no store has the ID.
	ErrStoreNotFound = errors.New("pd: store not found")
	// ErrStoreTombstone: the store was removed and can never come back.
	ErrStoreTombstone = errors.New("pd: store is tombstone")
	// ErrStoreConflict: a store ID or address is already registered by
	// another store (see StoreConflictError).
	ErrStoreConflict = errors.New("pd: store conflict")
	// ErrInvalidArgument: a request is malformed.
	ErrInvalidArgument = errors.New("pd: invalid argument")
	// ErrTooFewStores: taking the store offline would leave fewer Up stores
	// than max-replicas.
	ErrTooFewStores = errors.New("pd: too few up stores")
	// ErrRegionNotFound: no region has the ID or holds the key.
	ErrRegionNotFound = errors.New("pd: region not found")
	// ErrSchedulerNotFound: the scheduler is not enabled.
	ErrSchedulerNotFound = errors.New("pd: scheduler not found")
	// ErrOperatorNotFound: no operator for the region.
	ErrOperatorNotFound = errors.New("pd: operator not found")
	// ErrStaleRegion: a region heartbeat is older than what PD knows.
	ErrStaleRegion = errors.New("pd: stale region heartbeat")
	// ErrConcurrentUpdate: a compare-and-swap on the system keyspace lost to
	// another writer (usually a leader change); retry.
	ErrConcurrentUpdate = errors.New("pd: concurrent update of pd state, retry")
)

// StoreConflictError explains why a store was refused: its ID is bound to
// another address, or its address to another ID. It matches
// ErrStoreConflict with errors.Is.
type StoreConflictError struct {
	StoreID         uint64 // the ID the store claims
	Address         string // the claiming store's address
	ExistingID      uint64 // the registered store it collides with
	ExistingAddress string
}

func (e *StoreConflictError) Error() string {
	if e.ExistingID == e.StoreID {
		return fmt.Sprintf("pd: store_id %d is already registered by %s; this store is %s: give it a new store_id and wipe its data dir",
			e.StoreID, e.ExistingAddress, e.Address)
	}
	return fmt.Sprintf("pd: address %s is already registered by store_id %d; this store claims store_id %d: keep store_id %d in its config, or take store %d offline first",
		e.Address, e.ExistingID, e.StoreID, e.ExistingID, e.ExistingID)
}

// Is makes errors.Is(err, ErrStoreConflict) hold.
func (e *StoreConflictError) Is(target error) bool { return target == ErrStoreConflict }

// isNotLeader reports a not-leader error of PD or of the system keyspace.
func isNotLeader(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, client.ErrNotLeader)
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
