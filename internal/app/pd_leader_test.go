package app

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/pd"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// transferPD moves the metadata shard's leadership from one member to
// another and waits until the target leads.
func transferPD(t *testing.T, ms []*pdMember, from, to *pdMember) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var target uint64
	for i, m := range ms {
		if m == to {
			target = uint64(i + 1)
		}
	}
	for !to.cf.IsLeader() {
		if err := from.rn.TransferLeader(ctx, raftnode.MetadataShardID, target); err != nil && ctx.Err() != nil {
			t.Fatalf("transfer pd leadership to member %d: %v", target, err)
		}
		// A transfer can be dropped while an election runs: ask again
		// if the target does not lead within an election timeout or so.
		poll(ctx, time.Second, to.cf.IsLeader)
	}
	// The old leader steps down when the new leader's first message (its
	// vote request or heartbeat) reaches it: within a heartbeat here.
	if !poll(ctx, 10*time.Second, func() bool { return !from.cf.IsLeader() }) {
		t.Fatal("the old leader still believes it leads 10 s after the transfer")
	}
}

// TestPDLeaderChange moves the PD leadership A -> B -> A over a real
// 3-member raft group: the deposed leader refuses heartbeats and lookups
// with ErrNotLeader (no stale answers from its cache), the new leader serves
// them from state written by the old one, and A, leading again in a later
// raft term, reloads and sees what B wrote meanwhile.
func TestPDLeaderChange(t *testing.T) {
	ms := pdCluster(t, 3)
	a := pdLeader(t, ms)
	b := ms[0]
	if b == a {
		b = ms[1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := func(id uint64) *metav1.Store {
		return &metav1.Store{Id: id, Address: fmt.Sprintf("127.0.0.1:%d", 20000+id)}
	}
	region := func(id uint64, start, end string) *pdv1.RegionHeartbeatRequest {
		leader := &metav1.Peer{Id: id + 100, StoreId: 1}
		return &pdv1.RegionHeartbeatRequest{Term: 1, Leader: leader, Region: &metav1.Region{
			Id: id, StartKey: []byte(start), EndKey: []byte(end),
			RegionEpoch: &metav1.RegionEpoch{ConfVer: 1, Version: 1}, Peers: []*metav1.Peer{leader},
		}}
	}
	if _, err := a.pd.StoreHeartbeat(ctx, &pdv1.StoreStats{StoreId: 1}, store(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.pd.RegionHeartbeat(ctx, region(10, "", "m")); err != nil {
		t.Fatal(err)
	}

	transferPD(t, ms, a, b)
	if _, err := a.pd.StoreHeartbeat(ctx, &pdv1.StoreStats{StoreId: 1}, store(1)); !errors.Is(err, pd.ErrNotLeader) {
		t.Fatalf("store heartbeat on the deposed leader: %v, want ErrNotLeader", err)
	}
	if _, err := a.pd.GetRegion(ctx, []byte("a")); !errors.Is(err, pd.ErrNotLeader) {
		t.Fatalf("region lookup on the deposed leader: %v, want ErrNotLeader", err)
	}
	if _, err := b.pd.StoreHeartbeat(ctx, &pdv1.StoreStats{StoreId: 1}, store(1)); err != nil {
		t.Fatalf("store heartbeat on the new leader: %v", err)
	}
	if st, err := b.pd.GetStore(ctx, 1); err != nil || st.StateName != pd.StateUp {
		t.Fatalf("store 1 on the new leader: %+v, %v; want Up", st, err)
	}
	if r, err := b.pd.GetRegion(ctx, []byte("a")); err != nil || r.Region.GetId() != 10 {
		t.Fatalf("region of key a on the new leader: %v, %v; want region 10 (written by the old leader)", r.Region, err)
	}
	if _, err := b.pd.RegionHeartbeat(ctx, region(20, "m", "")); err != nil {
		t.Fatal(err)
	}

	transferPD(t, ms, b, a)
	if _, err := b.pd.RegionHeartbeat(ctx, region(20, "m", "")); !errors.Is(err, pd.ErrNotLeader) {
		t.Fatalf("region heartbeat on the deposed leader: %v, want ErrNotLeader", err)
	}
	if r, err := a.pd.GetRegion(ctx, []byte("x")); err != nil || r.Region.GetId() != 20 {
		t.Fatalf("region of key x on the leader of a later term: %v, %v; want region 20 (written by B while A followed)", r.Region, err)
	}
	if _, err := a.pd.StoreHeartbeat(ctx, &pdv1.StoreStats{StoreId: 1}, store(1)); err != nil {
		t.Fatalf("store heartbeat back on A: %v", err)
	}
}
