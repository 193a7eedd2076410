package chainfire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/chainfire/internal/etcdfmt"
	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/mvccpb"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// snapshotChunk is the blob size of one Snapshot response (etcd's).
const snapshotChunk = 32 << 10

// SnapshotInfo describes a snapshot written or restored.
type SnapshotInfo struct {
	Revision, Compacted int64
	Versions, Leases    int
	Bytes               int64
}

// writeSnapshot writes the state as an etcd snapshot file at path, from one
// pebble snapshot: a consistent point in time, and writes are never blocked.
func (f *fsm) writeSnapshot(path string) (SnapshotInfo, error) {
	var info SnapshotInfo
	snap := f.db.NewSnapshot()
	defer snap.Close()
	m, err := f.st.LoadMeta(snap)
	if err != nil {
		return info, err
	}
	applied, err := raftnode.ReadAppliedIndex(snap, raftnode.ShardKeyspace(raftnode.MetadataShardID))
	if err != nil {
		return info, err
	}
	w, err := etcdfmt.NewWriter(path)
	if err != nil {
		return info, err
	}
	err = f.st.Visible(snap, m.Revision, m.Compacted, func(_, key []byte, rev mvcc.Revision, v []byte) error {
		kv, err := mvcc.DecodeVersion(key, rev, v)
		if err != nil {
			return err
		}
		info.Versions++
		if kv == nil {
			return w.AddVersion(etcdfmt.Version{Main: rev.Main, Sub: rev.Sub, Deleted: true, KV: &mvccpb.KeyValue{Key: key}})
		}
		return w.AddVersion(etcdfmt.Version{Main: rev.Main, Sub: rev.Sub, KV: kv})
	})
	if err == nil {
		err = f.st.Leases(snap, func(id, ttl int64) {
			info.Leases++
			if err == nil {
				err = w.AddLease(etcdfmt.Lease{ID: id, TTL: ttl})
			}
		})
	}
	if err == nil {
		var a etcdfmt.Auth
		if a, err = authSnapshot(f.st, snap); err == nil {
			err = w.SetAuth(a)
		}
	}
	if err != nil {
		w.Abort()
		return info, err
	}
	if err := w.Close(applied, m.Compacted); err != nil {
		return info, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return info, err
	}
	info.Revision, info.Compacted, info.Bytes = m.Revision, m.Compacted, st.Size()
	return info, nil
}

// Snapshot streams the state as an etcd snapshot file (a bbolt database
// with etcd's buckets and a trailing SHA-256), so `etcdctl snapshot save`
// and `centra snapshot save` store a backup both etcd and centra restore.
// The file is built in the data directory from a pebble snapshot, then
// streamed and removed.
func (m *maintenanceService) Snapshot(ctx context.Context, _ *connect.Request[etcdserverpb.SnapshotRequest], stream *connect.ServerStream[etcdserverpb.SnapshotResponse]) error {
	s := m.s
	dir, err := os.MkdirTemp(s.cfg.DataDir, "snapshot-")
	if err != nil {
		return toConnectError(fmt.Errorf("chainfire: snapshot: %w", err))
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "db")
	start := time.Now()
	info, err := s.fsm.writeSnapshot(path)
	if err != nil {
		return toConnectError(fmt.Errorf("chainfire: snapshot: %w", err))
	}
	s.log.Info("Streaming a snapshot", "revision", info.Revision, "versions", info.Versions, "bytes", info.Bytes, "built_in", time.Since(start).Round(time.Millisecond))
	f, err := os.Open(path)
	if err != nil {
		return toConnectError(err)
	}
	defer f.Close()
	buf := make([]byte, snapshotChunk)
	remaining := info.Bytes
	for first := true; ; first = false {
		n, err := io.ReadFull(f, buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return toConnectError(err)
		}
		remaining -= int64(n)
		resp := &etcdserverpb.SnapshotResponse{RemainingBytes: uint64(remaining), Blob: buf[:n]}
		if first {
			resp.Header, resp.Version = s.header(&etcdserverpb.ResponseHeader{Revision: info.Revision}), Version
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	s.log.Info("Snapshot sent", "revision", info.Revision, "bytes", info.Bytes, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// SkipHashCheck accepts a file without the trailing SHA-256 (a db file
	// copied out of an etcd member's data directory).
	SkipHashCheck bool
	// Progress, when set, is called with the versions restored so far.
	Progress func(versions int)
	Logger   *slog.Logger
}

// restoreBatch bounds the records of one pebble batch during Restore.
const restoreBatch = 50000

// Restore loads an etcd snapshot file (taken from centra or from a real
// etcd) into a new state DB at stateDir, as the metadata shard's state:
// every key version with its revision, the compacted revision, leases
// with their keys, and users, roles and whether auth is enabled. Membership is not restored: the restored data directory
// starts a new cluster (bootstrap = true) whose members come from its
// config, as etcd's `snapshot restore` starts one from its flags.
func Restore(path, stateDir string, o RestoreOptions) (SnapshotInfo, error) {
	var info SnapshotInfo
	hasHash, err := etcdfmt.VerifyHash(path)
	if err != nil {
		return info, err
	}
	if !hasHash && !o.SkipHashCheck {
		return info, fmt.Errorf("chainfire: %s has no trailing SHA-256 (a db file copied from an etcd member?); check it is complete and pass --skip-hash-check", path)
	}
	if entries, err := os.ReadDir(stateDir); err == nil && len(entries) > 0 {
		return info, fmt.Errorf("chainfire: %s is not empty; restore into a new data directory", stateDir)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := raftnode.OpenStateDB(stateDir, &pebble.Options{}, log, 0)
	if err != nil {
		return info, err
	}
	defer db.Close()
	st := mvcc.New(raftnode.ShardKeyspace(raftnode.MetadataShardID).Key(nil))
	b := db.NewBatch()
	defer func() { b.Close() }()
	flush := func() error {
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		b.Close()
		b = db.NewBatch()
		return nil
	}
	leased := map[string]int64{} // key -> lease of its newest version
	rev := int64(mvcc.InitialRevision)
	contents, err := etcdfmt.Read(path, func(v etcdfmt.Version) error {
		kv := v.KV
		if v.Deleted {
			kv = nil
			delete(leased, string(v.KV.Key))
		} else if kv.Lease != 0 {
			leased[string(kv.Key)] = kv.Lease
		} else {
			delete(leased, string(kv.Key))
		}
		if err := st.RestoreVersion(b, v.KV.Key, mvcc.Revision{Main: v.Main, Sub: v.Sub}, kv); err != nil {
			return err
		}
		rev = max(rev, v.Main)
		info.Versions++
		if info.Versions%restoreBatch == 0 {
			if o.Progress != nil {
				o.Progress(info.Versions)
			}
			return flush()
		}
		return nil
	})
	if err != nil {
		return info, err
	}
	keys := map[int64][][]byte{}
	for k, id := range leased {
		keys[id] = append(keys[id], []byte(k))
	}
	for _, l := range contents.Leases {
		if err := st.RestoreLease(b, l.ID, l.TTL, keys[l.ID]); err != nil {
			return info, err
		}
	}
	for _, err := range []error{st.SetRevision(b, rev), st.SetCompacted(b, contents.Compacted), st.SetPhysical(b, contents.Compacted), restoreAuth(st, b, contents.Auth)} {
		if err != nil {
			return info, err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return info, err
	}
	if o.Progress != nil {
		o.Progress(info.Versions)
	}
	info.Revision, info.Compacted, info.Leases = rev, contents.Compacted, len(contents.Leases)
	return info, nil
}
