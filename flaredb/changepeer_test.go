package flaredb

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/flaredb/raftcmd/v1"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

func changePeer(t raftcmdv1.ChangeType, id, store, confVer uint64) *raftcmdv1.Command {
	return &raftcmdv1.Command{Epoch: &metav1.RegionEpoch{ConfVer: confVer, Version: 1},
		Cmd: &raftcmdv1.Command_ChangePeer{ChangePeer: &raftcmdv1.ChangePeer{ChangeType: t, Peer: &metav1.Peer{Id: id, StoreId: store}}}}
}

func TestRegionChangePeer(t *testing.T) {
	const (
		add     = raftcmdv1.ChangeType_CHANGE_TYPE_ADD_LEARNER
		promote = raftcmdv1.ChangeType_CHANGE_TYPE_PROMOTE_LEARNER
		remove  = raftcmdv1.ChangeType_CHANGE_TYPE_REMOVE_PEER
	)
	r, db := newTestRegion(t, "", "")
	steps := []struct {
		cmd   *raftcmdv1.Command
		code  uint64
		msg   string
		peers string // after the step
	}{
		{changePeer(add, 14, 4, 1), resultOK, "", "11@1 12@2 13@3 14@4L"},
		// The same step again carries the old conf_ver: refused, no change.
		{changePeer(add, 14, 4, 1), resultEpochNotMatch, "", "11@1 12@2 13@3 14@4L"},
		{changePeer(add, 15, 4, 2), resultInvalid, "store 4 already holds a peer", "11@1 12@2 13@3 14@4L"},
		{changePeer(add, 14, 5, 2), resultInvalid, "already a peer", "11@1 12@2 13@3 14@4L"},
		{changePeer(promote, 11, 1, 2), resultInvalid, "is not a learner", "11@1 12@2 13@3 14@4L"},
		{changePeer(promote, 14, 4, 2), resultOK, "", "11@1 12@2 13@3 14@4"},
		{changePeer(remove, 99, 1, 3), resultInvalid, "not a peer", "11@1 12@2 13@3 14@4"},
		{changePeer(remove, 11, 1, 3), resultOK, "", "12@2 13@3 14@4"},
		{changePeer(remove, 12, 2, 4), resultOK, "", "13@3 14@4"},
		{changePeer(remove, 13, 3, 5), resultOK, "", "14@4"},
		{changePeer(remove, 14, 4, 6), resultInvalid, "last voter", "14@4"},
		{changePeer(raftcmdv1.ChangeType_CHANGE_TYPE_UNSPECIFIED, 20, 9, 6), resultInvalid, "unknown change type", "14@4"},
	}
	wantConf := uint64(1)
	for i, st := range steps {
		res := apply(t, r, db, st.cmd)[0]
		if res.Value != st.code {
			t.Fatalf("step %d: code %d, want %d (%s)", i, res.Value, st.code, res.Data)
		}
		if st.msg != "" && !bytes.Contains(res.Data, []byte(st.msg)) {
			t.Fatalf("step %d: result %q does not say %q", i, res.Data, st.msg)
		}
		if res.Value == resultOK {
			wantConf++
		}
		d := r.desc()
		if got := peersString(d); got != st.peers || d.GetRegionEpoch().GetConfVer() != wantConf || d.GetRegionEpoch().GetVersion() != 1 {
			t.Fatalf("step %d: peers %q conf_ver %d version %d, want %q conf_ver %d version 1", i, got, d.GetRegionEpoch().GetConfVer(), d.GetRegionEpoch().GetVersion(), st.peers, wantConf)
		}
		// The descriptor in the DB is the one in memory.
		stored, err := readDescriptor(db, r.ks)
		if err != nil || peersString(stored) != st.peers {
			t.Fatalf("step %d: stored descriptor %v, %v", i, stored, err)
		}
	}
	// A data command with the old version still applies: conf changes do
	// not fence writes (TiKV's rule: only version does).
	if res := apply(t, r, db, put("a", "1", 1))[0]; res.Value != resultOK {
		t.Fatalf("write after conf changes: %d", res.Value)
	}
}

func peersString(d *metav1.Region) string {
	var parts []string
	for _, p := range d.GetPeers() {
		s := fmt.Sprintf("%d@%d", p.GetId(), p.GetStoreId())
		if p.GetRole() == metav1.PeerRole_PEER_ROLE_LEARNER {
			s += "L"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestUninitializedReplicaRefusesLogEntries(t *testing.T) {
	r, db := newTestRegion(t, "", "")
	r.cur.Store(nil) // a joined replica before its snapshot
	var refused int
	r.onUninitializedApply = func(_ uint64, n int) { refused += n }
	if res := apply(t, r, db, put("a", "1", 1))[0]; res.Value != resultInvalid || refused != 1 {
		t.Fatalf("entry on an uninitialized replica: code %d, reported %d", res.Value, refused)
	}
	if _, ok := read(t, db, "a"); ok {
		t.Fatal("an uninitialized replica applied a write")
	}
	lo, hi := r.Bounds()
	if bytes.Compare(lo, hi) >= 0 || len(hi) == 0 {
		t.Fatalf("uninitialized bounds [%q, %q) must be a non-empty range", lo, hi)
	}
}

func TestSubtractRanges(t *testing.T) {
	r := func(a, b string) [2][]byte { return [2][]byte{[]byte(a), []byte(b)} }
	for _, tc := range []struct {
		others []([2][]byte)
		want   string
	}{
		{nil, "[b,k)"},
		{[][2][]byte{r("a", "b"), r("k", "z")}, "[b,k)"},
		{[][2][]byte{r("d", "f")}, "[b,d) [f,k)"},
		{[][2][]byte{r("f", "z"), r("a", "c")}, "[c,f)"},
		{[][2][]byte{r("a", "z")}, ""},
		{[][2][]byte{r("b", "c"), r("c", "d"), r("e", "k")}, "[d,e)"},
	} {
		var parts []string
		for _, s := range subtractRanges([]byte("b"), []byte("k"), tc.others) {
			parts = append(parts, fmt.Sprintf("[%s,%s)", s[0], s[1]))
		}
		if got := strings.Join(parts, " "); got != tc.want {
			t.Errorf("[b,k) minus %q = %q, want %q", tc.others, got, tc.want)
		}
	}
}

// TestChangePeerCommandVersion: ChangePeer is stamped version 2, which a
// replica applying up to version 1 (a binary from before PD's membership
// steps) refuses as too new, the same on every such replica, instead of
// guessing; every other command keeps version 1, so those replicas go on
// applying writes and splits during a rolling upgrade.
func TestChangePeerCommandVersion(t *testing.T) {
	for _, tc := range []struct {
		cmd  *raftcmdv1.Command
		want uint32
	}{
		{changePeer(raftcmdv1.ChangeType_CHANGE_TYPE_ADD_LEARNER, 14, 4, 1), 2},
		{put("a", "1", 1), 1},
		{&raftcmdv1.Command{Cmd: &raftcmdv1.Command_Split{Split: &raftcmdv1.Split{}}}, 1},
		{&raftcmdv1.Command{Cmd: &raftcmdv1.Command_DeleteRange{DeleteRange: &raftcmdv1.DeleteRange{}}}, 1},
		{&raftcmdv1.Command{Cmd: &raftcmdv1.Command_CompareAndSwap{CompareAndSwap: &raftcmdv1.CompareAndSwap{}}}, 1},
	} {
		if got := versionFor(tc.cmd); got != tc.want {
			t.Errorf("versionFor(%T) = %d, want %d", tc.cmd.Cmd, got, tc.want)
		}
	}
	// This binary applies both; the one after it refuses what it cannot
	// know (the rule a version-1 binary applies to ChangePeer).
	r, db := newTestRegion(t, "", "")
	cp := changePeer(raftcmdv1.ChangeType_CHANGE_TYPE_ADD_LEARNER, 14, 4, 1)
	cp.Version = versionFor(cp)
	if res := apply(t, r, db, cp)[0]; res.Value != resultOK {
		t.Fatalf("ChangePeer at version %d: code %d (%s)", cp.Version, res.Value, res.Data)
	}
	next := put("b", "1", 1)
	next.Version = commandVersion + 1
	if res := apply(t, r, db, next)[0]; res.Value != resultInvalid || !strings.Contains(string(res.Data), "upgrade this store") {
		t.Fatalf("version %d: code %d (%s), want refused with an upgrade hint", next.Version, res.Value, res.Data)
	}
}
