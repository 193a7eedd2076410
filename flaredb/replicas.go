package flaredb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/flaredb/internal/keys"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/shared/loop"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// Store-local keys (layout version 1): never replicated, never part of a
// snapshot (they sort between the data keyspace 'd' and the shard keyspace
// 's'). The value is empty; presence is the fact.
//
//	'l' 'j' be64(region)   this store started its replica with Join as a
//	                       learner and it has not snapshotted since its
//	                       promotion: restart it non-voting
//	'l' 'x' be64(region)   the replica is being destroyed: finish on start
const localTag = 'l'

func localKey(kind byte, id uint64) []byte {
	k := []byte{localTag, kind, 0, 0, 0, 0, 0, 0, 0, 0}
	for i := range 8 {
		k[2+i] = byte(id >> (56 - 8*i))
	}
	return k
}

func joinedKey(id uint64) []byte     { return localKey('j', id) }
func destroyingKey(id uint64) []byte { return localKey('x', id) }

func (s *Store) hasLocal(k []byte) (bool, error) {
	_, closer, err := s.cfg.DB.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("flaredb: read local key %x: %w", k, err)
	}
	closer.Close()
	return true, nil
}

func (s *Store) setLocal(k []byte, on bool) error {
	if on {
		return s.cfg.DB.Set(k, nil, pebble.Sync)
	}
	return s.cfg.DB.Delete(k, pebble.Sync)
}

// onPromoted clears the join marker once raftnode snapshotted the promoted
// replica: it restarts as a voter from then on.
func (s *Store) onPromoted(id uint64) {
	if r := s.regions.get(id); r == nil {
		return
	}
	if err := s.setLocal(joinedKey(id), false); err != nil {
		s.log.Warn("Could not clear a promoted replica's join marker; it restarts non-voting", "region_id", id, "err", err)
	}
}

// onRegionLoaded runs when a replica first has a descriptor (it runs with
// data: restarted, born by a split, or a joined replica's first snapshot):
// a store heartbeat now lists the region, so PD stops counting the peer as
// pending at once, not after up to HeartbeatInterval. Under writes that
// split regions more often than that (10 s by default), waiting meant
// pending peers never returned to 0.
func (s *Store) onRegionLoaded(id uint64, joined bool) {
	if joined {
		s.log.Info("Region replica initialized from a snapshot", "region_id", id)
	}
	s.storeHeartbeatSoon()
}

func (s *Store) onUninitializedApply(id uint64, n int) {
	s.log.Error("Region replica without data received log entries instead of a snapshot; they were refused, remove this peer and add a new one",
		"region_id", id, "entries", n)
}

// peerCheckLoop compares this store's replicas with PD's regions every
// PeerCheckInterval (DESIGN.md "Membership changes"): it starts replicas
// PD lists on this store that do not run here (new learners, split-born
// replicas this store skipped) and destroys replicas PD says were removed.
func (s *Store) peerCheckLoop(ctx context.Context) {
	loop.Every(ctx, s.cfg.PeerCheckInterval, func(time.Time) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := s.checkPeers(cctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.log.Warn("Peer check against PD failed, retrying...", "err", err)
		}
	})
}

func (s *Store) checkPeers(ctx context.Context) error {
	rs, err := s.cfg.PD.ScanRegions(ctx, nil, nil, 0)
	if err != nil {
		return err
	}
	pd := make(map[uint64]*metav1.Region, len(rs))
	var errs []error
	for _, rw := range rs {
		d := rw.GetRegion()
		pd[d.GetId()] = d
		p := s.peerOf(d)
		// A replica starts only once the region has a leader: leaders
		// compact their log before their first heartbeat, so the new
		// replica gets a snapshot, not a log replayed over missing data.
		if p == nil || rw.GetLeader() == nil || s.regions.get(d.GetId()) != nil || s.wasDestroyed(d.GetId(), p.GetId()) {
			continue
		}
		if err := s.joinRegion(ctx, d, p); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range s.regions.all() {
		if reason := removedBy(r, pd[r.id]); reason != "" && !s.stillVoting(r) {
			if err := s.destroyRegion(ctx, r.id, r.peerID, reason, pd); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		// Every replica, not only the leader, compacts its log past entry
		// 1 once: whichever replica leads when a learner joins must send
		// it a snapshot (DESIGN.md).
		if r.desc() != nil && !r.compacted.Load() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := s.ensureCompacted(cctx, r); err != nil && ctx.Err() == nil {
				s.log.Debug("Region log not compacted yet; retrying at the next peer check", "region_id", r.id, "err", err)
			}
			cancel()
		}
	}
	return errors.Join(errs...)
}

// stillVoting reports whether local replica r still counts in its raft
// group's quorum: it is a voter of the membership it knows and it hears
// from a leader. The descriptor drops a peer before the leader removes it
// from raft (DESIGN.md "Membership changes"); destroying it in between
// would leave a dead voter in the quorum, and one more failure (a store
// killed in that second) would stall the region for good: its leader could
// no longer commit the removal. Such a replica is left to the leader's
// removal (dragonboat unloads it, the next check destroys it). A replica
// that missed its removal hears from no leader, so it is destroyed.
func (s *Store) stillVoting(r *region) bool {
	if _, voter := s.cfg.Node.LocalVoters(r.id)[r.peerID]; !voter {
		return false
	}
	_, _, ok := s.cfg.Node.Leader(r.id)
	return ok
}

// removedBy says why local replica r was removed from its region, or "" if
// it was not: its own descriptor no longer lists its peer (it applied its
// removal), or PD's view p is newer and does not list it (it missed the
// removal). Peer IDs are never reused, so neither can be a re-added peer.
func removedBy(r *region, p *metav1.Region) string {
	d := r.desc()
	if d != nil && peerByID(d, r.peerID) == nil {
		return fmt.Sprintf("its descriptor (conf_ver %d) no longer lists peer %d", d.GetRegionEpoch().GetConfVer(), r.peerID)
	}
	if p == nil || peerByID(p, r.peerID) != nil {
		return ""
	}
	if d == nil {
		return fmt.Sprintf("PD's region (conf_ver %d) no longer lists peer %d, which never got its snapshot", p.GetRegionEpoch().GetConfVer(), r.peerID)
	}
	if p.GetRegionEpoch().GetConfVer() > d.GetRegionEpoch().GetConfVer() {
		return fmt.Sprintf("PD's region has conf_ver %d > local %d without peer %d", p.GetRegionEpoch().GetConfVer(), d.GetRegionEpoch().GetConfVer(), r.peerID)
	}
	return ""
}

// joinRegion starts this store's peer p of region d (PD's view), which it
// has no data for: a learner being added, or a split-born replica this
// store skipped. It waits for the leader's snapshot.
func (s *Store) joinRegion(ctx context.Context, d *metav1.Region, p *metav1.Peer) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	local, err := readDescriptor(s.cfg.DB, raftnode.ShardKeyspace(d.GetId()))
	if err != nil || local != nil {
		return err // a local descriptor: loadRegions or a split starts it
	}
	// A local replica whose (older) range overlaps would still apply its
	// log to keys the new replica's snapshot brings: wait until it catches
	// up (it applies the split, or a snapshot shrinks it) or is destroyed.
	if o := s.regions.overlapping(d.GetStartKey(), d.GetEndKey()); len(o) > 0 {
		s.log.Debug("Not joining a region yet: a local replica overlaps it", "region_id", d.GetId(), "overlapping_region_id", o[0].GetId())
		return nil
	}
	if p.GetRole() == metav1.PeerRole_PEER_ROLE_LEARNER {
		if err := s.setLocal(joinedKey(d.GetId()), true); err != nil {
			return err
		}
	}
	if err := s.startReplica(ctx, p.GetId(), d, true); err != nil {
		return err
	}
	s.log.Info("Joined region, waiting for its snapshot", "region_id", d.GetId(), "peer_id", p.GetId(), "role", p.GetRole().String())
	return nil
}

// wasDestroyed reports whether this process destroyed peer peerID of
// region id (PD may still list it for a moment).
func (s *Store) wasDestroyed(id, peerID uint64) bool {
	s.storesMu.Lock()
	defer s.storesMu.Unlock()
	return s.destroyed[[2]uint64{id, peerID}]
}

// destroyRegion removes this store's replica peerID of region id: raft data,
// descriptor, applied index, markers, and the data range it owned except
// what other local replicas own (its descriptor may predate a split whose
// child runs here). pd is PD's view, for the ranges of replicas still
// waiting for their snapshot. A crash midway is finished by loadRegions
// (the destroying marker).
func (s *Store) destroyRegion(ctx context.Context, id, peerID uint64, reason string, pd map[uint64]*metav1.Region) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	s.log.Info("Destroying removed region replica", "region_id", id, "peer_id", peerID, "reason", reason)
	if err := s.setLocal(destroyingKey(id), true); err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.cfg.Node.DestroyReplica(dctx, id, peerID); err != nil {
		return fmt.Errorf("flaredb: destroy region %d replica: %w", id, err)
	}
	if err := s.deleteRegionState(id, pd); err != nil {
		return err
	}
	s.forget(id)
	s.storesMu.Lock()
	s.destroyed[[2]uint64{id, peerID}] = true
	s.storesMu.Unlock()
	s.log.Info("Region replica destroyed", "region_id", id, "peer_id", peerID)
	s.storeHeartbeatSoon()
	return nil
}

// deleteRegionState deletes, in one synced batch, region id's shard
// keyspace, its local markers and its data range minus the ranges of the
// store's other replicas.
func (s *Store) deleteRegionState(id uint64, pd map[uint64]*metav1.Region) error {
	d, err := readDescriptor(s.cfg.DB, raftnode.ShardKeyspace(id))
	if err != nil {
		return err
	}
	b := s.cfg.DB.NewBatch()
	defer b.Close()
	if d != nil {
		lo, hi := keys.DataRange(d.GetStartKey(), d.GetEndKey())
		others, err := s.otherRanges(id, pd)
		if err != nil {
			return err
		}
		for _, span := range subtractRanges(lo, hi, others) {
			if err := b.DeleteRange(span[0], span[1], nil); err != nil {
				return err
			}
		}
	}
	slo, shi := raftnode.ShardKeyspace(id).ShardBounds()
	if err := b.DeleteRange(slo, shi, nil); err != nil {
		return err
	}
	for _, k := range [][]byte{joinedKey(id), destroyingKey(id)} {
		if err := b.Delete(k, nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

// otherRanges returns the data ranges of every local replica but region
// id's: the descriptors in the state DB (loaded or not), and PD's view of
// running replicas still waiting for their snapshot.
func (s *Store) otherRanges(id uint64, pd map[uint64]*metav1.Region) ([][2][]byte, error) {
	ids, err := raftnode.ShardIDs(s.cfg.DB, raftnode.MetadataShardID+1)
	if err != nil {
		return nil, err
	}
	var out [][2][]byte
	add := func(d *metav1.Region) {
		lo, hi := keys.DataRange(d.GetStartKey(), d.GetEndKey())
		out = append(out, [2][]byte{lo, hi})
	}
	for _, o := range ids {
		if o == id {
			continue
		}
		d, err := readDescriptor(s.cfg.DB, raftnode.ShardKeyspace(o))
		if err != nil {
			return nil, err
		}
		if d != nil {
			add(d)
		}
	}
	for _, r := range s.regions.all() {
		if r.id != id && r.desc() == nil && pd[r.id] != nil {
			add(pd[r.id])
		}
	}
	return out, nil
}

// subtractRanges returns [lo, hi) minus every range in others, as sorted
// disjoint ranges.
func subtractRanges(lo, hi []byte, others [][2][]byte) [][2][]byte {
	slices.SortFunc(others, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
	var out [][2][]byte
	cur := lo
	for _, o := range others {
		if bytes.Compare(o[1], cur) <= 0 || bytes.Compare(o[0], hi) >= 0 {
			continue // entirely before cur or after hi
		}
		if bytes.Compare(o[0], cur) > 0 {
			out = append(out, [2][]byte{cur, o[0]})
		}
		cur = o[1]
		if bytes.Compare(cur, hi) >= 0 {
			return out
		}
	}
	return append(out, [2][]byte{cur, hi})
}

// storeStatsSnapshots fills the snapshot counts of a store heartbeat.
func (s *Store) storeStatsSnapshots(st *pdv1.StoreStats) {
	sending, receiving := s.snaps.InFlight()
	st.SendingSnapCount, st.ReceivingSnapCount = uint32(sending), uint32(receiving)
}
