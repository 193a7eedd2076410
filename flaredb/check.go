package flaredb

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/flaredb/internal/keys"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// RegionCheck is the outcome of CheckRegions.
type RegionCheck struct {
	// Regions is the number of region descriptors found.
	Regions int
	// DataKeys is the number of user data keys read; Orphans of them lie
	// in no local region's range.
	DataKeys, Orphans int
	// Problems are inconsistencies; Warnings are states that happen in a
	// healthy store (a replica behind a split) but are worth knowing.
	Problems, Warnings []string
}

// CheckRegions verifies the region descriptors of a store's state DB
// against each other (`centra debug check`): each decodes, has a
// non-empty range and an epoch >= 1; two regions overlap only when one
// has a lower version (a replica that has not applied a split yet: it
// catches up from its leader); and every data key lies in some region's
// range (data outside them is left over from a removed replica). It reads
// r only.
func CheckRegions(r pebble.Reader) (RegionCheck, error) {
	var out RegionCheck
	ids, err := raftnode.ShardIDs(r, raftnode.MetadataShardID+1)
	if err != nil {
		return out, err
	}
	var regions []*metav1.Region
	for _, id := range ids {
		d, err := readDescriptor(r, raftnode.ShardKeyspace(id))
		if err != nil {
			out.Problems = append(out.Problems, err.Error())
			continue
		}
		if d == nil {
			continue // a replica that joined and has no snapshot yet
		}
		out.Regions++
		if d.GetId() != id {
			out.Problems = append(out.Problems, fmt.Sprintf("region %d: the descriptor stored under shard %d names region %d", id, id, d.GetId()))
		}
		if e := d.GetRegionEpoch(); e.GetConfVer() < 1 || e.GetVersion() < 1 {
			out.Problems = append(out.Problems, fmt.Sprintf("region %d: epoch conf_ver %d / version %d; both start at 1", id, e.GetConfVer(), e.GetVersion()))
		}
		if end := d.GetEndKey(); len(end) > 0 && bytes.Compare(d.GetStartKey(), end) >= 0 {
			out.Problems = append(out.Problems, fmt.Sprintf("region %d: empty range [%x, %x)", id, d.GetStartKey(), end))
			continue
		}
		regions = append(regions, d)
	}
	sort.Slice(regions, func(i, j int) bool { return bytes.Compare(regions[i].GetStartKey(), regions[j].GetStartKey()) < 0 })
	for i := 1; i < len(regions); i++ {
		for j := i - 1; j >= 0; j-- {
			a, b := regions[j], regions[i]
			if len(a.GetEndKey()) > 0 && bytes.Compare(a.GetEndKey(), b.GetStartKey()) <= 0 {
				continue
			}
			av, bv := a.GetRegionEpoch().GetVersion(), b.GetRegionEpoch().GetVersion()
			msg := fmt.Sprintf("region %d [%x, %x) version %d overlaps region %d [%x, %x) version %d", a.GetId(), a.GetStartKey(), a.GetEndKey(), av, b.GetId(), b.GetStartKey(), b.GetEndKey(), bv)
			if av == bv {
				out.Problems = append(out.Problems, msg+": two regions of the same version cannot share keys")
			} else {
				out.Warnings = append(out.Warnings, msg+": the older one has not applied a split yet and catches up from its leader")
			}
		}
	}
	return out, countOrphans(r, regions, &out)
}

// countOrphans counts the data keys outside every region's range; regions
// are sorted by start key.
func countOrphans(r pebble.Reader, regions []*metav1.Region, out *RegionCheck) error {
	bounds := make([][2][]byte, len(regions))
	for i, d := range regions {
		lo, hi := keys.DataRange(d.GetStartKey(), d.GetEndKey())
		bounds[i] = [2][]byte{lo, hi}
	}
	covered := func(k []byte) bool {
		// The regions starting at or before k, nearest first.
		for i := sort.Search(len(bounds), func(i int) bool { return bytes.Compare(bounds[i][0], k) > 0 }) - 1; i >= 0; i-- {
			if bytes.Compare(k, bounds[i][1]) < 0 {
				return true
			}
		}
		return false
	}
	lower, upper := keys.DataRange(nil, nil)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		out.DataKeys++
		if !covered(it.Key()) {
			out.Orphans++
		}
	}
	if out.Orphans > 0 {
		out.Warnings = append(out.Warnings, fmt.Sprintf("%d of %d data keys lie in no local region (left over from a removed replica); they are not served and do no harm", out.Orphans, out.DataKeys))
	}
	return it.Error()
}
