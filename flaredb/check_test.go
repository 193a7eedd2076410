package flaredb

import (
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/flaredb/internal/keys"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

// TestCheckRegions: adjacent regions and their data pass; an overlap of
// two regions of the same version is a problem, one with an older version
// (a replica behind a split) a warning, as is data in no region.
func TestCheckRegions(t *testing.T) {
	_, db := newTestRegion(t, "", "m") // region 10: [, m) version 1
	write := func(id uint64, start, end string, version uint64) {
		t.Helper()
		b := db.NewBatch()
		if err := writeDescriptor(b, &metav1.Region{Id: id, StartKey: []byte(start), EndKey: []byte(end), RegionEpoch: &metav1.RegionEpoch{ConfVer: 1, Version: version}}); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	write(20, "m", "t", 1)
	for _, k := range []string{"a", "m", "s"} {
		if err := db.Set(keys.Data([]byte(k)), []byte("v"), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := CheckRegions(db)
	if err != nil || rc.Regions != 2 || rc.DataKeys != 3 || len(rc.Problems) > 0 || len(rc.Warnings) > 0 {
		t.Fatalf("two adjacent regions: %+v %v", rc, err)
	}

	if err := db.Set(keys.Data([]byte("x")), []byte("v"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	write(30, "p", "", 2) // overlaps region 20 [m, t), newer version
	rc, err = CheckRegions(db)
	if err != nil || len(rc.Problems) > 0 || len(rc.Warnings) != 1 || !strings.Contains(rc.Warnings[0], "has not applied a split yet") || rc.Orphans != 0 {
		t.Fatalf("a region behind a split: %+v %v", rc, err)
	}
	write(30, "p", "v", 1) // same version: impossible
	rc, err = CheckRegions(db)
	if err != nil || len(rc.Problems) != 1 || !strings.Contains(rc.Problems[0], "same version") || rc.Orphans != 1 {
		t.Fatalf("two regions of one version overlapping, data at x outside every region: %+v %v", rc, err)
	}
	write(40, "z", "y", 1)
	if rc, err = CheckRegions(db); err != nil || !strings.Contains(strings.Join(rc.Problems, "\n"), "region 40: empty range") {
		t.Fatalf("a region with start > end: %+v %v", rc, err)
	}
}
