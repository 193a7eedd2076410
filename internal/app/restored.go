package app

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/centra-cloud/centra/config"
)

// RestoreFile is the record `centra snapshot restore --name --initial-members`
// leaves in a data directory: the new cluster the restored state belongs to.
const RestoreFile = "restore.json"

// RestoreRecord pins a restored data directory to its new cluster, as
// etcd's `snapshot restore --name --initial-cluster` does by writing the
// membership into the restored member's WAL: until the node has bootstrapped
// its raft log, it starts only with this cluster ID, node ID and member
// list, so a restored member cannot join the old cluster (or bootstrap a
// different one) by an outdated config.
type RestoreRecord struct {
	ClusterID      uint64   `json:"cluster_id"`
	NodeID         uint64   `json:"node_id"`
	InitialMembers []string `json:"initial_members"`
	// SnapshotSHA256 is the hex SHA-256 of the restored file.
	SnapshotSHA256 string `json:"snapshot_sha256"`
	Revision       int64  `json:"revision"`
}

// RestoredClusterID derives the ID of a cluster restored from a snapshot
// whose SHA-256 is fileSHA onto members: every member restoring the same
// file with the same member list derives the same ID, and it differs from
// the old cluster's (etcd derives its cluster ID from the member list in
// the same spirit). It fits in TOML's int64 and is never 0.
func RestoredClusterID(fileSHA []byte, members []config.Member) uint64 {
	h := sha256.New()
	h.Write([]byte("centra snapshot restore\x00"))
	h.Write(fileSHA)
	for _, m := range MemberEntries(members) {
		h.Write([]byte(m + "\x00"))
	}
	id := binary.BigEndian.Uint64(h.Sum(nil)) & (1<<62 - 1)
	return max(id, 1)
}

// MemberEntries renders members as "ID=ADDR" entries ordered by ID (the
// form RestoreRecord.InitialMembers holds).
func MemberEntries(members []config.Member) []string {
	sorted := slices.Clone(members)
	slices.SortFunc(sorted, func(a, b config.Member) int { return cmp.Compare(a.ID, b.ID) })
	out := make([]string, 0, len(sorted))
	for _, m := range sorted {
		out = append(out, fmt.Sprintf("%d=%s", m.ID, m.Addr))
	}
	return out
}

// WriteRestoreRecord writes r into dataDir durably.
func WriteRestoreRecord(dataDir string, r RestoreRecord) error {
	return writeFileAtomic(filepath.Join(dataDir, RestoreFile), r)
}

// checkRestored refuses to bootstrap a restored data directory with a
// config that does not describe the cluster it was restored for.
func checkRestored(c *config.Config) error {
	path := filepath.Join(c.EffectiveDataDir(), RestoreFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("centra: read %s: %w", path, err)
	}
	var r RestoreRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("centra: %s is corrupt (%v); run `centra snapshot restore` again into an empty data directory", path, err)
	}
	members, err := c.BootstrapMembers()
	if err != nil {
		return err
	}
	var wrong []string
	if c.Cluster.ID != r.ClusterID {
		wrong = append(wrong, fmt.Sprintf("[cluster] id = %d (the config says %d)", r.ClusterID, c.Cluster.ID))
	}
	if c.Node.ID != r.NodeID {
		wrong = append(wrong, fmt.Sprintf("[node] id = %d (the config says %d)", r.NodeID, c.Node.ID))
	}
	if !c.Cluster.Bootstrap {
		wrong = append(wrong, "[cluster] bootstrap = true")
	}
	if got := MemberEntries(members); !slices.Equal(got, r.InitialMembers) {
		wrong = append(wrong, fmt.Sprintf("[cluster] initial_members = %s (the config says %s)", TOMLList(r.InitialMembers), TOMLList(got)))
	}
	if len(wrong) > 0 {
		return fmt.Errorf("centra: %s was restored from a snapshot for a new cluster; set %s in this node's config, as `centra snapshot restore` printed", c.EffectiveDataDir(), strings.Join(wrong, ", "))
	}
	return nil
}

// TOMLList renders strings as a TOML array.
func TOMLList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}
