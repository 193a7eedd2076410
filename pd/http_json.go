package pd

import (
	"encoding/hex"
	"strings"
	"time"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

// JSON shapes of the HTTP API, field for field as TiKV PD's (metapb with
// omitempty tags, plus PD's additions).

type storeLabelJSON struct {
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
}

// storeMetaJSON is metapb.Store as PD's API renders it, plus state_name.
type storeMetaJSON struct {
	ID                  uint64           `json:"id,omitempty"`
	Address             string           `json:"address,omitempty"`
	State               int32            `json:"state,omitempty"`
	Labels              []storeLabelJSON `json:"labels,omitempty"`
	Version             string           `json:"version,omitempty"`
	PeerAddress         string           `json:"peer_address,omitempty"`
	StatusAddress       string           `json:"status_address,omitempty"`
	GitHash             string           `json:"git_hash,omitempty"`
	StartTimestamp      int64            `json:"start_timestamp,omitempty"`
	DeployPath          string           `json:"deploy_path,omitempty"`
	LastHeartbeat       int64            `json:"last_heartbeat,omitempty"`
	PhysicallyDestroyed bool             `json:"physically_destroyed,omitempty"`
	NodeState           int32            `json:"node_state,omitempty"`
	StateName           string           `json:"state_name"`
}

type storeStatusJSON struct {
	Capacity           string     `json:"capacity"`
	Available          string     `json:"available"`
	UsedSize           string     `json:"used_size"`
	LeaderCount        int        `json:"leader_count"`
	LeaderWeight       float64    `json:"leader_weight"`
	LeaderScore        float64    `json:"leader_score"`
	LeaderSize         int64      `json:"leader_size"`
	RegionCount        int        `json:"region_count"`
	RegionWeight       float64    `json:"region_weight"`
	RegionScore        float64    `json:"region_score"`
	RegionSize         int64      `json:"region_size"`
	LearnerCount       int        `json:"learner_count,omitempty"`
	PendingPeerCount   int        `json:"pending_peer_count,omitempty"`
	SendingSnapCount   uint32     `json:"sending_snap_count,omitempty"`
	ReceivingSnapCount uint32     `json:"receiving_snap_count,omitempty"`
	IsBusy             bool       `json:"is_busy,omitempty"`
	DiskLow            bool       `json:"disk_low,omitempty"`
	SlowScore          uint64     `json:"slow_score,omitempty"`
	StartTS            *time.Time `json:"start_ts,omitempty"`
	LastHeartbeatTS    *time.Time `json:"last_heartbeat_ts,omitempty"`
	Uptime             *string    `json:"uptime,omitempty"`
}

// storeJSON is PD's StoreInfo (store and status) plus the flat fields the
// runbook's jq reads: id, address, state (the state name) and capacity and
// available in bytes.
type storeJSON struct {
	ID        uint64          `json:"id"`
	Address   string          `json:"address"`
	State     string          `json:"state"`
	Capacity  uint64          `json:"capacity"`
	Available uint64          `json:"available"`
	Store     storeMetaJSON   `json:"store"`
	Status    storeStatusJSON `json:"status"`
}

type storesJSON struct {
	Count  int         `json:"count"`
	Stores []storeJSON `json:"stores"`
}

// storeAgg is what PD derives per store from region heartbeats.
type storeAgg struct {
	leaderCount, regionCount, learnerCount, pendingCount int
	leaderSize, regionSize                               int64
}

func toStoreJSON(info StoreInfo, agg storeAgg, now time.Time) storeJSON {
	st := info.Store
	m := storeMetaJSON{
		ID: st.GetId(), Address: st.GetAddress(), State: int32(st.GetState()),
		Version: st.GetVersion(), PeerAddress: st.GetPeerAddress(), StatusAddress: st.GetStatusAddress(),
		GitHash: st.GetGitHash(), StartTimestamp: st.GetStartTimestamp(), DeployPath: st.GetDeployPath(),
		LastHeartbeat: st.GetLastHeartbeat(), PhysicallyDestroyed: st.GetPhysicallyDestroyed(),
		NodeState: int32(st.GetNodeState()), StateName: info.StateName,
	}
	for _, l := range st.GetLabels() {
		m.Labels = append(m.Labels, storeLabelJSON{Key: l.GetKey(), Value: l.GetValue()})
	}
	stats := info.Stats
	status := storeStatusJSON{
		Capacity: humanBytes(stats.GetCapacity()), Available: humanBytes(stats.GetAvailable()), UsedSize: humanBytes(stats.GetUsedSize()),
		LeaderCount: agg.leaderCount, LeaderWeight: info.Weight.Leader, LeaderScore: float64(agg.leaderCount) / info.Weight.Leader, LeaderSize: agg.leaderSize,
		RegionCount: agg.regionCount, RegionWeight: info.Weight.Region, RegionScore: float64(agg.regionSize) / info.Weight.Region, RegionSize: agg.regionSize,
		LearnerCount: agg.learnerCount, PendingPeerCount: agg.pendingCount,
		SendingSnapCount: stats.GetSendingSnapCount(), ReceivingSnapCount: stats.GetReceivingSnapCount(), IsBusy: stats.GetIsBusy(),
		DiskLow: stats.GetDiskLow(),
	}
	if stats != nil && stats.GetStartTime() != 0 {
		start := time.Unix(int64(stats.GetStartTime()), 0).UTC()
		status.StartTS = &start
		up := now.Sub(start).String()
		status.Uptime = &up
	}
	if !info.LastHeartbeat.IsZero() {
		hb := info.LastHeartbeat.UTC()
		status.LastHeartbeatTS = &hb
	}
	return storeJSON{ID: st.GetId(), Address: st.GetAddress(), State: info.StateName, Capacity: stats.GetCapacity(), Available: stats.GetAvailable(),
		Store: m, Status: status}
}

type epochJSON struct {
	ConfVer uint64 `json:"conf_ver,omitempty"`
	Version uint64 `json:"version,omitempty"`
}

// peerJSON is PD's MetaPeer: metapb.Peer plus role_name and is_learner.
type peerJSON struct {
	ID        uint64 `json:"id,omitempty"`
	StoreID   uint64 `json:"store_id,omitempty"`
	Role      int32  `json:"role,omitempty"`
	RoleName  string `json:"role_name"`
	IsLearner bool   `json:"is_learner,omitempty"`
}

type downPeerJSON struct {
	Peer        peerJSON `json:"peer"`
	DownSeconds uint64   `json:"down_seconds,omitempty"`
}

type regionJSON struct {
	ID              uint64         `json:"id"`
	StartKey        string         `json:"start_key"`
	EndKey          string         `json:"end_key"`
	Epoch           *epochJSON     `json:"epoch,omitempty"`
	Peers           []peerJSON     `json:"peers,omitempty"`
	Leader          *peerJSON      `json:"leader,omitempty"`
	DownPeers       []downPeerJSON `json:"down_peers,omitempty"`
	PendingPeers    []peerJSON     `json:"pending_peers,omitempty"`
	WrittenBytes    uint64         `json:"written_bytes"`
	ReadBytes       uint64         `json:"read_bytes"`
	WrittenKeys     uint64         `json:"written_keys"`
	ReadKeys        uint64         `json:"read_keys"`
	ApproximateSize int64          `json:"approximate_size"`
	ApproximateKeys int64          `json:"approximate_keys"`
}

type regionsJSON struct {
	Count   int          `json:"count"`
	Regions []regionJSON `json:"regions"`
}

var roleNames = map[metav1.PeerRole]string{
	metav1.PeerRole_PEER_ROLE_VOTER_UNSPECIFIED: "Voter",
	metav1.PeerRole_PEER_ROLE_LEARNER:           "Learner",
	metav1.PeerRole_PEER_ROLE_INCOMING_VOTER:    "IncomingVoter",
	metav1.PeerRole_PEER_ROLE_DEMOTING_VOTER:    "DemotingVoter",
}

func toPeerJSON(p *metav1.Peer) peerJSON {
	return peerJSON{ID: p.GetId(), StoreID: p.GetStoreId(), Role: int32(p.GetRole()), RoleName: roleNames[p.GetRole()],
		IsLearner: p.GetRole() == metav1.PeerRole_PEER_ROLE_LEARNER}
}

// hexKey is PD's HexRegionKeyStr: upper-case hex of the raw key.
func hexKey(k []byte) string { return strings.ToUpper(hex.EncodeToString(k)) }

func toRegionJSON(info RegionInfo) regionJSON {
	r := info.Region
	out := regionJSON{
		ID: r.GetId(), StartKey: hexKey(r.GetStartKey()), EndKey: hexKey(r.GetEndKey()),
		WrittenBytes: info.BytesWritten, ReadBytes: info.BytesRead, WrittenKeys: info.KeysWritten, ReadKeys: info.KeysRead,
		ApproximateSize: int64(info.ApproximateSize), ApproximateKeys: int64(info.ApproximateKeys),
	}
	if e := r.GetRegionEpoch(); e != nil {
		out.Epoch = &epochJSON{ConfVer: e.GetConfVer(), Version: e.GetVersion()}
	}
	for _, p := range r.GetPeers() {
		out.Peers = append(out.Peers, toPeerJSON(p))
	}
	if info.Leader != nil {
		l := toPeerJSON(info.Leader)
		out.Leader = &l
	}
	for _, d := range info.DownPeers {
		out.DownPeers = append(out.DownPeers, downPeerJSON{Peer: toPeerJSON(d.GetPeer()), DownSeconds: d.GetDownSeconds()})
	}
	for _, p := range info.PendingPeers {
		out.PendingPeers = append(out.PendingPeers, toPeerJSON(p))
	}
	return out
}

// regionStatsJSON is PD's statistics.RegionStats.
type regionStatsJSON struct {
	Count            int              `json:"count"`
	EmptyCount       int              `json:"empty_count"`
	StorageSize      int64            `json:"storage_size"`
	UserStorageSize  int64            `json:"user_storage_size"`
	StorageKeys      int64            `json:"storage_keys"`
	StoreLeaderCount map[uint64]int   `json:"store_leader_count"`
	StorePeerCount   map[uint64]int   `json:"store_peer_count"`
	StoreLeaderSize  map[uint64]int64 `json:"store_leader_size"`
	StoreLeaderKeys  map[uint64]int64 `json:"store_leader_keys"`
	StorePeerSize    map[uint64]int64 `json:"store_peer_size"`
	StorePeerKeys    map[uint64]int64 `json:"store_peer_keys"`
	// PendingPeers and DownPeers count the peers that are not caught up
	// and those that are down (reported by their leader, or on a store
	// that stopped heartbeating); 0 on a healthy cluster.
	PendingPeers int `json:"pending_peers"`
	DownPeers    int `json:"down_peers"`
}

// emptyRegionMiB is PD's EmptyRegionApproximateSize: a region this small
// (MiB) counts as empty.
const emptyRegionMiB = 1

func computeRegionStats(regions []RegionInfo) regionStatsJSON {
	st := regionStatsJSON{
		StoreLeaderCount: map[uint64]int{}, StorePeerCount: map[uint64]int{},
		StoreLeaderSize: map[uint64]int64{}, StoreLeaderKeys: map[uint64]int64{},
		StorePeerSize: map[uint64]int64{}, StorePeerKeys: map[uint64]int64{},
	}
	for _, r := range regions {
		size, keys := int64(r.ApproximateSize), int64(r.ApproximateKeys)
		st.Count++
		if size <= emptyRegionMiB {
			st.EmptyCount++
		}
		st.StorageSize += size
		st.UserStorageSize += size
		st.StorageKeys += keys
		st.PendingPeers += len(r.PendingPeers)
		st.DownPeers += len(r.DownPeers)
		if l := r.Leader.GetStoreId(); l != 0 {
			st.StoreLeaderCount[l]++
			st.StoreLeaderSize[l] += size
			st.StoreLeaderKeys[l] += keys
		}
		for _, p := range r.Region.GetPeers() {
			st.StorePeerCount[p.GetStoreId()]++
			st.StorePeerSize[p.GetStoreId()] += size
			st.StorePeerKeys[p.GetStoreId()] += keys
		}
	}
	return st
}

// aggregate derives per-store counts from the regions.
func aggregate(regions []RegionInfo) map[uint64]storeAgg {
	aggs := map[uint64]storeAgg{}
	for _, r := range regions {
		size := int64(r.ApproximateSize)
		if l := r.Leader.GetStoreId(); l != 0 {
			a := aggs[l]
			a.leaderCount++
			a.leaderSize += size
			aggs[l] = a
		}
		for _, p := range r.Region.GetPeers() {
			a := aggs[p.GetStoreId()]
			a.regionCount++
			a.regionSize += size
			if p.GetRole() == metav1.PeerRole_PEER_ROLE_LEARNER {
				a.learnerCount++
			}
			aggs[p.GetStoreId()] = a
		}
		for _, p := range r.PendingPeers {
			a := aggs[p.GetStoreId()]
			a.pendingCount++
			aggs[p.GetStoreId()] = a
		}
	}
	return aggs
}
