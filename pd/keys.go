package pd

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// System keys of the placement driver. Layout version 1: every key sits
// under "pd/v1/"; a future incompatible layout uses "pd/v2/" and a
// migration. See DESIGN.md.
const (
	keyPrefix         = "pd/v1/"
	keyStorePrefix    = keyPrefix + "store/"           // + %020d store ID -> meta.v1.Store (proto)
	keyRegionPrefix   = keyPrefix + "region/"          // + %020d region ID -> meta.v1.RegionRecord (proto)
	keyAllocID        = keyPrefix + "alloc_id"         // 8-byte big-endian highest reserved ID
	keyLeaderEpoch    = keyPrefix + "leader_epoch"     // 8-byte big-endian count of PD leaderships
	keyScheduleConfig = keyPrefix + "config/schedule"  // JSON ScheduleConfig
	keyReplicaConfig  = keyPrefix + "config/replicate" // JSON ReplicationConfig
	keySchedulers     = keyPrefix + "schedulers"       // JSON []schedulerEntry
	keyBootstrapped   = keyPrefix + "bootstrapped"     // ID of the first region, once created
	keyStoreWeights   = keyPrefix + "store_weights"    // JSON {store id: {"leader", "region"}}
)

func storeKey(id uint64) []byte  { return fmt.Appendf(nil, "%s%020d", keyStorePrefix, id) }
func regionKey(id uint64) []byte { return fmt.Appendf(nil, "%s%020d", keyRegionPrefix, id) }

// idFromKey parses the decimal ID after prefix.
func idFromKey(key []byte, prefix string) (uint64, error) {
	if len(key) <= len(prefix) {
		return 0, fmt.Errorf("pd: malformed key %q", key)
	}
	return strconv.ParseUint(string(key[len(prefix):]), 10, 64)
}

// encodeUint64 and decodeUint64 encode the ID allocator's counter as 8
// big-endian bytes.
func encodeUint64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeUint64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("pd: counter value has %d bytes, want 8", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
