package flaredb

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	flaredbv1 "github.com/centra-cloud/centra/gen/centra/flaredb/v1"
	"github.com/centra-cloud/centra/shared/diskguard"
)

// TestWritesRefusedShortOfDisk: while the data directory's filesystem has
// less than min_free_bytes free (a real statfs against a threshold above
// the free space), the region leader refuses puts with ResourceExhausted
// and an error naming the directory and its free bytes, lets deletes
// through, and accepts puts again once space is back (threshold lowered).
func TestWritesRefusedShortOfDisk(t *testing.T) {
	dir := t.TempDir()
	g, err := diskguard.New(dir, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCluster(t, 3, func(cfg *StoreConfig) { cfg.DiskGuard = g })
	ts := c.leader(1)
	sv := &service{s: ts.s, log: ts.s.log}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc := func() *flaredbv1.Context {
		return &flaredbv1.Context{RegionId: 1, RegionEpoch: ts.s.regions.get(1).desc().GetRegionEpoch()}
	}
	put := func() error {
		r, err := sv.Put(ctx, connect.NewRequest(&flaredbv1.PutRequest{Context: rc(), Key: []byte("k"), Value: []byte("v")}))
		if err == nil && r.Msg.GetRegionError() != nil {
			err = errors.New(r.Msg.GetRegionError().String())
		}
		return err
	}
	err = put()
	if connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "bytes free") {
		t.Fatalf("put with the disk short of space: %v, want ResourceExhausted naming %s and its free bytes", err, dir)
	}
	d, err := sv.Delete(ctx, connect.NewRequest(&flaredbv1.DeleteRequest{Context: rc(), Key: []byte("k")}))
	if err != nil || d.Msg.GetRegionError() != nil {
		t.Fatalf("delete with the disk short of space: %v %v", d, err)
	}
	if err := g.SetMinFree(1); err != nil {
		t.Fatal(err)
	}
	if err := put(); err != nil {
		t.Fatalf("put once space is back: %v", err)
	}
}
