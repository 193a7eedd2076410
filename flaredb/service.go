package flaredb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"
	"github.com/lni/dragonboat/v4/statemachine"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/flaredb/internal/keys"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/flaredb/raftcmd/v1"
	flaredbv1 "github.com/centra-cloud/centra/gen/centra/flaredb/v1"
	"github.com/centra-cloud/centra/gen/centra/flaredb/v1/flaredbv1connect"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// Request limits. A raft entry holds one request, so the batch limits keep
// entries well below what a follower must buffer.
const (
	// MaxKeySize is the largest key, in bytes (TiKV's default).
	MaxKeySize = 8 << 10
	// MaxValueSize is the largest value, in bytes.
	MaxValueSize = 4 << 20
	// MaxBatchKeys is the most keys in one BatchGet or BatchPut.
	MaxBatchKeys = keys.MaxBatchKeys
	// MaxBatchBytes bounds the keys plus values of one BatchPut.
	MaxBatchBytes = 8 << 20
	// maxRequestBytes bounds a request message on the wire.
	maxRequestBytes = MaxBatchBytes + 1<<20
	// scanChunkPairs and scanChunkBytes bound one streamed Scan message.
	scanChunkPairs = 256
	scanChunkBytes = 1 << 20
	// defaultTimeout bounds a request whose caller set no deadline.
	defaultTimeout = 30 * time.Second
	// slowQuery is the scan latency from which "Handled query" is logged at
	// info level (always when a scan returns 1000 rows or more).
	slowQuery = 100 * time.Millisecond
)

// Namespace modes (config namespace_modes).
const (
	modeStrong   = "strong"
	modeEventual = "eventual"
)

// Handler returns the KVService's path and handler.
func (s *Store) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	opts = append(opts, connect.WithReadMaxBytes(maxRequestBytes))
	return flaredbv1connect.NewKVServiceHandler(&service{s: s, log: s.cfg.Logger.With("component", "flaredb_service", "store_id", s.cfg.ID)}, opts...)
}

// service implements flaredbv1connect.KVServiceHandler over the store's
// region replicas.
type service struct {
	s   *Store
	log *slog.Logger
}

var _ flaredbv1connect.KVServiceHandler = (*service)(nil)

// modeOf returns the consistency mode of namespace ns on this store.
func (s *Store) modeOf(ns string) string {
	if m, ok := s.cfg.NamespaceModes[ns]; ok {
		return m
	}
	if m, ok := s.cfg.NamespaceModes[keys.DefaultNamespace]; ok {
		return m
	}
	return modeStrong
}

// target is a request resolved to a local replica.
type target struct {
	r    *region
	d    *metav1.Region
	ns   string
	mode string
}

func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

// checkKey enforces the key size limit.
func checkKey(k []byte) error {
	switch {
	case len(k) == 0:
		return invalid("the key is empty")
	case len(k) > MaxKeySize:
		return invalid("the key is %d bytes; the limit is %d", len(k), MaxKeySize)
	}
	return nil
}

// checkBound checks a range bound (empty: the namespace's end or start). It
// may be one byte longer than a key: a scan resuming after a key of
// MaxKeySize starts at key+0x00.
func checkBound(what string, k []byte) error {
	if len(k) > MaxKeySize+1 {
		return invalid("%s is %d bytes; the limit is %d", what, len(k), MaxKeySize+1)
	}
	return nil
}

func checkValue(v []byte) error {
	if len(v) > MaxValueSize {
		return invalid("the value is %d bytes; the limit is %d", len(v), MaxValueSize)
	}
	return nil
}

// resolve finds the replica for rc and checks the epoch and that every
// encoded key lies in the region. write: the request changes data (the
// epoch must match exactly). A strong read or a write needs this replica
// to lead.
func (sv *service) resolve(rc *flaredbv1.Context, write bool, enc ...[]byte) (*target, *flaredbv1.RegionError, error) {
	ns, err := keys.Namespace(rc.GetNamespace())
	if err != nil {
		return nil, nil, invalid("%v", err)
	}
	t := &target{ns: ns, mode: sv.s.modeOf(ns)}
	t.r = sv.s.regions.get(rc.GetRegionId())
	if t.r == nil || t.r.desc() == nil {
		return nil, &flaredbv1.RegionError{
			Message:        fmt.Sprintf("region %d has no replica on store %d", rc.GetRegionId(), sv.s.cfg.ID),
			RegionNotFound: &flaredbv1.RegionNotFound{RegionId: rc.GetRegionId()},
		}, nil
	}
	t.d = t.r.desc()
	want, have := rc.GetRegionEpoch().GetVersion(), t.d.GetRegionEpoch().GetVersion()
	// An eventual read may be served by a replica that has not applied a
	// split the client already knows of: its range still covers the keys.
	if want < have || (want != have && (write || t.mode == modeStrong)) {
		return nil, sv.epochNotMatch(t.d, enc), nil
	}
	if rerr := keysInRegion(t.d, enc); rerr != nil {
		return nil, rerr, nil
	}
	if write || t.mode == modeStrong {
		if rerr := sv.notLeader(t.r); rerr != nil {
			return nil, rerr, nil
		}
	}
	return t, nil, nil
}

func keysInRegion(d *metav1.Region, enc [][]byte) *flaredbv1.RegionError {
	for _, k := range enc {
		if !keys.InRange(k, d.GetStartKey(), d.GetEndKey()) {
			return &flaredbv1.RegionError{
				Message:        fmt.Sprintf("key is not in region %d", d.GetId()),
				KeyNotInRegion: &flaredbv1.KeyNotInRegion{Key: k, RegionId: d.GetId(), StartKey: d.GetStartKey(), EndKey: d.GetEndKey()},
			}
		}
	}
	return nil
}

// epochNotMatch tells the client the regions it should use now: d and the
// local regions holding the request's keys.
func (sv *service) epochNotMatch(d *metav1.Region, enc [][]byte) *flaredbv1.RegionError {
	cur := []*metav1.Region{d}
	seen := map[uint64]bool{d.GetId(): true}
	for _, k := range enc {
		for _, o := range sv.s.regions.overlapping(k, append(bytes.Clone(k), 0)) {
			if !seen[o.GetId()] {
				seen[o.GetId()] = true
				cur = append(cur, o)
			}
		}
	}
	return &flaredbv1.RegionError{
		Message:       fmt.Sprintf("region %d is at epoch version %d, not the request's (a split happened, or this replica has not applied it yet)", d.GetId(), d.GetRegionEpoch().GetVersion()),
		EpochNotMatch: &flaredbv1.EpochNotMatch{CurrentRegions: cur},
	}
}

// notLeader returns a NotLeader error unless this replica leads r.
func (sv *service) notLeader(r *region) *flaredbv1.RegionError {
	leader, _, self := sv.s.isLeader(r)
	if self {
		return nil
	}
	nl := &flaredbv1.NotLeader{RegionId: r.id}
	for _, p := range r.desc().GetPeers() {
		if p.GetId() == leader {
			nl.Leader = p
			nl.LeaderAddress = sv.s.cachedStoreAddress(p.GetStoreId())
			if nl.LeaderAddress == "" {
				go func() {
					ctx, cancel := context.WithTimeout(sv.s.ctx, 5*time.Second)
					defer cancel()
					_, _ = sv.s.storeInfo(ctx, p.GetStoreId())
				}()
			}
		}
	}
	return &flaredbv1.RegionError{Message: fmt.Sprintf("store %d does not lead region %d", sv.s.cfg.ID, r.id), NotLeader: nl}
}

// withDeadline gives ctx the default timeout when the caller set none.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, defaultTimeout)
}

// raftError turns a raftnode error into a region error the client retries,
// or an RPC error. A proposal abandoned in flight (ErrTimeout, also when
// its shard lost the leader meanwhile: the entry may still commit under
// the next leader) is DeadlineExceeded, an unknown outcome that the client
// does not resend for a non-idempotent request (CAS); only a request not
// submitted for want of a leader is NotLeader, which every client retries.
func (sv *service) raftError(r *region, err error) (*flaredbv1.RegionError, error) {
	switch {
	case errors.Is(err, raftnode.ErrTimeout):
		return nil, connect.NewError(connect.CodeDeadlineExceeded, err)
	case errors.Is(err, raftnode.ErrNoLeader):
		return &flaredbv1.RegionError{Message: err.Error(), NotLeader: &flaredbv1.NotLeader{RegionId: r.id}}, nil
	case errors.Is(err, raftnode.ErrShardNotFound):
		return &flaredbv1.RegionError{Message: err.Error(), RegionNotFound: &flaredbv1.RegionNotFound{RegionId: r.id}}, nil
	case errors.Is(err, raftnode.ErrClosed):
		return nil, connect.NewError(connect.CodeUnavailable, err)
	default:
		return nil, connect.NewError(connect.CodeInternal, err)
	}
}

// propose runs cmd through raft in t's region and maps refusals to region
// errors. The command carries the epoch resolve checked.
func (sv *service) propose(ctx context.Context, t *target, cmd *raftcmdv1.Command, enc [][]byte) (statemachine.Result, *raftcmdv1.Result, *flaredbv1.RegionError, error) {
	cmd.Version, cmd.Epoch = versionFor(cmd), t.d.GetRegionEpoch()
	data, err := proto.Marshal(cmd)
	if err != nil {
		return statemachine.Result{}, nil, nil, err
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	res, err := sv.s.cfg.Node.Propose(ctx, t.r.id, data)
	if err != nil {
		rerr, err := sv.raftError(t.r, err)
		return res, nil, rerr, err
	}
	out := &raftcmdv1.Result{}
	if len(res.Data) > 0 {
		if err := proto.Unmarshal(res.Data, out); err != nil {
			return res, nil, nil, connect.NewError(connect.CodeInternal, fmt.Errorf("decode apply result: %w", err))
		}
	}
	switch res.Value {
	case resultOK, resultCASFailed:
		return res, out, nil, nil
	case resultEpochNotMatch:
		return res, out, sv.epochNotMatch(out.GetRegion(), enc), nil
	case resultKeyNotInRegion:
		return res, out, keysInRegion(out.GetRegion(), [][]byte{out.GetKey()}), nil
	default:
		return res, out, nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("region %d refused the command: %s", t.r.id, out.GetMessage()))
	}
}

// write resolves and proposes a data-changing command.
func (sv *service) write(ctx context.Context, op string, rc *flaredbv1.Context, cmd *raftcmdv1.Command, enc [][]byte) (*raftcmdv1.Result, statemachine.Result, *flaredbv1.RegionError, error) {
	began := time.Now()
	t, rerr, err := sv.resolve(rc, true, enc...)
	if t != nil && addsData(cmd) {
		if err = sv.shortOfDisk(t); err != nil {
			t = nil
		}
	}
	var res statemachine.Result
	var out *raftcmdv1.Result
	if t != nil {
		res, out, rerr, err = sv.propose(ctx, t, cmd, enc)
	}
	sv.done(op, began, sv.s.m.writeDur, rerr, err)
	return out, res, rerr, err
}

// shortOfDisk is ResourceExhausted when this store (t's region leader) or,
// by PD, the store of one of the region's replicas is short of disk space:
// the leader must not write, nor feed them entries that add data. It is
// checked after the leadership check, so that a follower short of space
// answers NotLeader (the client goes to the leader, which knows).
func (sv *service) shortOfDisk(t *target) error {
	if err := sv.s.cfg.DiskGuard.Err(); err != nil {
		return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("flaredb: store %d: %w", sv.s.cfg.ID, err))
	}
	if low := t.r.diskLow.Load(); low != nil {
		return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("flaredb: region %d: the data directories of stores %v, which hold its replicas, have less than storage.min_free_bytes free (as they reported to PD); writes resume once they have room again", t.r.id, *low))
	}
	return nil
}

// addsData reports whether cmd writes a value: what a store short of disk
// space refuses (deletes free space and pass).
func addsData(cmd *raftcmdv1.Command) bool {
	switch c := cmd.Cmd.(type) {
	case *raftcmdv1.Command_DeleteRange:
		return false
	case *raftcmdv1.Command_Write:
		return slices.ContainsFunc(c.Write.GetMutations(), func(m *raftcmdv1.Mutation) bool { return !m.GetDelete() })
	}
	return true
}

// done records a request's outcome.
func (sv *service) done(op string, began time.Time, h *prometheus.HistogramVec, rerr *flaredbv1.RegionError, err error) {
	result := "ok"
	switch {
	case err != nil:
		result = "error"
	case rerr != nil:
		result = "region_error"
		sv.s.m.regionErrors.WithLabelValues(regionErrorType(rerr)).Inc()
	default:
		h.WithLabelValues(op).Observe(time.Since(began).Seconds())
	}
	sv.s.m.requests.WithLabelValues(op, result).Inc()
}

func regionErrorType(e *flaredbv1.RegionError) string {
	switch {
	case e.GetNotLeader() != nil:
		return "not_leader"
	case e.GetEpochNotMatch() != nil:
		return "epoch_not_match"
	case e.GetRegionNotFound() != nil:
		return "region_not_found"
	case e.GetKeyNotInRegion() != nil:
		return "key_not_in_region"
	default:
		return "server_busy"
	}
}

// read resolves a read and, for a strong namespace, waits until this
// replica has applied everything committed when the read arrived (ReadIndex
// through the leader). The caller then reads pebble directly.
func (sv *service) read(ctx context.Context, rc *flaredbv1.Context, enc ...[]byte) (*target, *flaredbv1.RegionError, error) {
	t, rerr, err := sv.resolve(rc, false, enc...)
	if t == nil {
		return nil, rerr, err
	}
	replica := "follower"
	if _, _, self := sv.s.isLeader(t.r); self {
		replica = "leader"
	}
	if t.mode == modeStrong {
		ctx, cancel := withDeadline(ctx)
		defer cancel()
		if _, err := sv.s.cfg.Node.Read(ctx, t.r.id, nil); err != nil {
			rerr, err := sv.raftError(t.r, err)
			return nil, rerr, err
		}
		// A split applied meanwhile may have moved the keys out.
		if t.d = t.r.desc(); t.d.GetRegionEpoch().GetVersion() != rc.GetRegionEpoch().GetVersion() {
			return nil, sv.epochNotMatch(t.d, enc), nil
		}
	}
	sv.s.m.reads.WithLabelValues(t.mode, replica).Add(float64(max(len(enc), 1)))
	return t, nil, nil
}

func get(r pebble.Reader, enc []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(keys.Data(enc))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, connect.NewError(connect.CodeInternal, err)
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

func (sv *service) Get(ctx context.Context, req *connect.Request[flaredbv1.GetRequest]) (*connect.Response[flaredbv1.GetResponse], error) {
	began := time.Now()
	m := req.Msg
	if err := checkKey(m.GetKey()); err != nil {
		return nil, err
	}
	resp := &flaredbv1.GetResponse{}
	ns, _ := keys.Namespace(m.GetContext().GetNamespace())
	enc := keys.Encode(ns, m.GetKey())
	t, rerr, err := sv.read(ctx, m.GetContext(), enc)
	if t != nil {
		var found bool
		resp.Value, found, err = get(sv.s.cfg.DB, enc)
		resp.NotFound = !found
	}
	sv.done("get", began, sv.s.m.readDur, rerr, err)
	if err != nil {
		return nil, err
	}
	resp.RegionError = rerr
	return connect.NewResponse(resp), nil
}

func (sv *service) BatchGet(ctx context.Context, req *connect.Request[flaredbv1.BatchGetRequest]) (*connect.Response[flaredbv1.BatchGetResponse], error) {
	began := time.Now()
	m := req.Msg
	if len(m.GetKeys()) > MaxBatchKeys {
		return nil, invalid("%d keys in one BatchGet; the limit is %d", len(m.GetKeys()), MaxBatchKeys)
	}
	ns, _ := keys.Namespace(m.GetContext().GetNamespace())
	enc := make([][]byte, len(m.GetKeys()))
	for i, k := range m.GetKeys() {
		if err := checkKey(k); err != nil {
			return nil, err
		}
		enc[i] = keys.Encode(ns, k)
	}
	resp := &flaredbv1.BatchGetResponse{}
	t, rerr, err := sv.read(ctx, m.GetContext(), enc...)
	if t != nil {
		snap := sv.s.cfg.DB.NewSnapshot()
		for i, k := range enc {
			v, found, gerr := get(snap, k)
			if gerr != nil {
				err = gerr
				break
			}
			if found {
				resp.Pairs = append(resp.Pairs, &flaredbv1.KvPair{Key: m.GetKeys()[i], Value: v})
			}
		}
		snap.Close()
	}
	sv.done("batch_get", began, sv.s.m.readDur, rerr, err)
	if err != nil {
		return nil, err
	}
	resp.RegionError = rerr
	return connect.NewResponse(resp), nil
}

// mutations validates and encodes pairs for a Write command.
func mutations(ns string, pairs []*flaredbv1.KvPair, del bool) ([]*raftcmdv1.Mutation, [][]byte, error) {
	if len(pairs) > MaxBatchKeys {
		return nil, nil, invalid("%d keys in one batch; the limit is %d", len(pairs), MaxBatchKeys)
	}
	ms := make([]*raftcmdv1.Mutation, len(pairs))
	enc := make([][]byte, len(pairs))
	total := 0
	for i, p := range pairs {
		if err := checkKey(p.GetKey()); err != nil {
			return nil, nil, err
		}
		if err := checkValue(p.GetValue()); err != nil {
			return nil, nil, err
		}
		total += len(p.GetKey()) + len(p.GetValue())
		enc[i] = keys.Encode(ns, p.GetKey())
		ms[i] = &raftcmdv1.Mutation{Key: enc[i], Value: p.GetValue(), Delete: del}
	}
	if total > MaxBatchBytes {
		return nil, nil, invalid("the batch holds %d bytes of keys and values; the limit is %d (split it)", total, MaxBatchBytes)
	}
	return ms, enc, nil
}

// writePairs proposes puts (or deletes) of pairs.
func (sv *service) writePairs(ctx context.Context, op string, rc *flaredbv1.Context, pairs []*flaredbv1.KvPair, del bool) (*flaredbv1.RegionError, error) {
	ns, err := keys.Namespace(rc.GetNamespace())
	if err != nil {
		return nil, invalid("%v", err)
	}
	ms, enc, err := mutations(ns, pairs, del)
	if err != nil {
		return nil, err
	}
	cmd := &raftcmdv1.Command{Cmd: &raftcmdv1.Command_Write{Write: &raftcmdv1.Write{Mutations: ms}}}
	_, _, rerr, err := sv.write(ctx, op, rc, cmd, enc)
	return rerr, err
}

func (sv *service) Put(ctx context.Context, req *connect.Request[flaredbv1.PutRequest]) (*connect.Response[flaredbv1.PutResponse], error) {
	m := req.Msg
	rerr, err := sv.writePairs(ctx, "put", m.GetContext(), []*flaredbv1.KvPair{{Key: m.GetKey(), Value: m.GetValue()}}, false)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flaredbv1.PutResponse{RegionError: rerr}), nil
}

func (sv *service) BatchPut(ctx context.Context, req *connect.Request[flaredbv1.BatchPutRequest]) (*connect.Response[flaredbv1.BatchPutResponse], error) {
	m := req.Msg
	if len(m.GetPairs()) == 0 {
		return connect.NewResponse(&flaredbv1.BatchPutResponse{}), nil
	}
	rerr, err := sv.writePairs(ctx, "batch_put", m.GetContext(), m.GetPairs(), false)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flaredbv1.BatchPutResponse{RegionError: rerr}), nil
}

func (sv *service) Delete(ctx context.Context, req *connect.Request[flaredbv1.DeleteRequest]) (*connect.Response[flaredbv1.DeleteResponse], error) {
	m := req.Msg
	rerr, err := sv.writePairs(ctx, "delete", m.GetContext(), []*flaredbv1.KvPair{{Key: m.GetKey()}}, true)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flaredbv1.DeleteResponse{RegionError: rerr}), nil
}

// widen adds to an EpochNotMatch answer of a range request the local
// regions overlapping the encoded range [start, end), so the client learns
// every region the split made of its range at once.
func (sv *service) widen(rerr *flaredbv1.RegionError, start, end []byte) *flaredbv1.RegionError {
	enm := rerr.GetEpochNotMatch()
	if enm == nil {
		return rerr
	}
	for _, o := range sv.s.regions.overlapping(start, end) {
		if !slices.ContainsFunc(enm.CurrentRegions, func(r *metav1.Region) bool { return r.GetId() == o.GetId() }) {
			enm.CurrentRegions = append(enm.CurrentRegions, o)
		}
	}
	return rerr
}

func (sv *service) DeleteRange(ctx context.Context, req *connect.Request[flaredbv1.DeleteRangeRequest]) (*connect.Response[flaredbv1.DeleteRangeResponse], error) {
	m := req.Msg
	if err := checkBound("start_key", m.GetStartKey()); err != nil {
		return nil, err
	}
	if err := checkBound("end_key", m.GetEndKey()); err != nil {
		return nil, err
	}
	ns, err := keys.Namespace(m.GetContext().GetNamespace())
	if err != nil {
		return nil, invalid("%v", err)
	}
	s, e := keys.Range(ns, m.GetStartKey(), m.GetEndKey())
	if bytes.Compare(s, e) >= 0 {
		return nil, invalid("start_key %q is not below end_key %q", m.GetStartKey(), m.GetEndKey())
	}
	cmd := &raftcmdv1.Command{Cmd: &raftcmdv1.Command_DeleteRange{DeleteRange: &raftcmdv1.DeleteRange{StartKey: s, EndKey: e}}}
	_, _, rerr, err := sv.write(ctx, "delete_range", m.GetContext(), cmd, nil)
	if err != nil {
		return nil, err
	}
	rerr = sv.widen(rerr, s, e)
	return connect.NewResponse(&flaredbv1.DeleteRangeResponse{RegionError: rerr}), nil
}

func (sv *service) CompareAndSwap(ctx context.Context, req *connect.Request[flaredbv1.CompareAndSwapRequest]) (*connect.Response[flaredbv1.CompareAndSwapResponse], error) {
	m := req.Msg
	ns, err := keys.Namespace(m.GetContext().GetNamespace())
	if err != nil {
		return nil, invalid("%v", err)
	}
	ms, enc, err := mutations(ns, []*flaredbv1.KvPair{{Key: m.GetKey(), Value: m.GetValue()}}, m.GetDelete())
	if err != nil {
		return nil, err
	}
	cmd := &raftcmdv1.Command{Cmd: &raftcmdv1.Command_CompareAndSwap{CompareAndSwap: &raftcmdv1.CompareAndSwap{
		Mutation: ms[0], PreviousValue: m.GetPreviousValue(), PreviousNotExist: m.GetPreviousNotExist(),
	}}}
	out, res, rerr, err := sv.write(ctx, "cas", m.GetContext(), cmd, enc)
	if err != nil {
		return nil, err
	}
	resp := &flaredbv1.CompareAndSwapResponse{RegionError: rerr}
	if rerr == nil {
		resp.Succeeded = res.Value == resultOK
		resp.PreviousValue, resp.PreviousNotExist = out.GetPreviousValue(), out.GetPreviousNotExist()
	}
	return connect.NewResponse(resp), nil
}

func (sv *service) Scan(ctx context.Context, req *connect.Request[flaredbv1.ScanRequest], stream *connect.ServerStream[flaredbv1.ScanResponse]) error {
	began := time.Now()
	m := req.Msg
	for _, k := range [][]byte{m.GetStartKey(), m.GetEndKey()} {
		if err := checkBound("scan bound", k); err != nil {
			return err
		}
	}
	ns, err := keys.Namespace(m.GetContext().GetNamespace())
	if err != nil {
		return invalid("%v", err)
	}
	// The range is clamped to the region below; a client with a stale
	// epoch learns every local region of the range.
	encStart, encEnd := keys.Range(ns, m.GetStartKey(), m.GetEndKey())
	t, rerr, err := sv.read(ctx, m.GetContext())
	if t == nil {
		rerr = sv.widen(rerr, encStart, encEnd)
		sv.done("scan", began, sv.s.m.readDur, rerr, err)
		if err != nil {
			return err
		}
		return stream.Send(&flaredbv1.ScanResponse{RegionError: rerr})
	}
	s, e, ok := keys.Clamp(encStart, encEnd, t.d.GetStartKey(), t.d.GetEndKey())
	if !ok {
		rerr := &flaredbv1.RegionError{
			Message:        fmt.Sprintf("the scan range does not meet region %d", t.d.GetId()),
			KeyNotInRegion: &flaredbv1.KeyNotInRegion{Key: keys.Encode(ns, m.GetStartKey()), RegionId: t.d.GetId(), StartKey: t.d.GetStartKey(), EndKey: t.d.GetEndKey()},
		}
		sv.done("scan", began, sv.s.m.readDur, rerr, nil)
		return stream.Send(&flaredbv1.ScanResponse{RegionError: rerr})
	}
	rows, err := sv.scan(stream, ns, s, e, m)
	sv.done("scan", began, sv.s.m.readDur, nil, err)
	latency := time.Since(began)
	level := slog.LevelDebug
	if rows >= 1000 || latency >= slowQuery {
		level = slog.LevelInfo
	}
	if sv.log.Enabled(ctx, level) {
		sv.log.Log(ctx, level, fmt.Sprintf("Handled query, rows=%d, latency=%dms", rows, latency.Milliseconds()),
			"op", "scan", "region_id", t.d.GetId(), "namespace", ns, "mode", t.mode)
	}
	return err
}

// scan streams the pairs of the encoded range [s, e) in chunks.
func (sv *service) scan(stream *connect.ServerStream[flaredbv1.ScanResponse], ns string, s, e []byte, m *flaredbv1.ScanRequest) (rows int, err error) {
	lo, hi := keys.DataRange(s, e)
	it, err := sv.s.cfg.DB.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, connect.NewError(connect.CodeInternal, err)
	}
	defer it.Close()
	nsStart, _ := keys.NamespaceRange(ns)
	strip := 1 + len(nsStart)
	first, next := it.First, it.Next
	if m.GetReverse() {
		first, next = it.Last, it.Prev
	}
	chunk := &flaredbv1.ScanResponse{}
	size := 0
	for ok := first(); ok; ok = next() {
		p := &flaredbv1.KvPair{Key: bytes.Clone(it.Key()[strip:])}
		if !m.GetKeyOnly() {
			p.Value = bytes.Clone(it.Value())
		}
		chunk.Pairs = append(chunk.Pairs, p)
		size += len(p.Key) + len(p.Value)
		rows++
		if limit := m.GetLimit(); limit > 0 && rows >= int(limit) {
			break
		}
		if len(chunk.Pairs) >= scanChunkPairs || size >= scanChunkBytes {
			if err := stream.Send(chunk); err != nil {
				return rows, err
			}
			chunk, size = &flaredbv1.ScanResponse{}, 0
		}
	}
	if err := it.Error(); err != nil {
		return rows, connect.NewError(connect.CodeInternal, err)
	}
	if len(chunk.Pairs) > 0 || rows == 0 {
		return rows, stream.Send(chunk)
	}
	return rows, nil
}

func (sv *service) SplitRegion(ctx context.Context, req *connect.Request[flaredbv1.SplitRegionRequest]) (*connect.Response[flaredbv1.SplitRegionResponse], error) {
	m := req.Msg
	ns, err := keys.Namespace(m.GetContext().GetNamespace())
	if err != nil {
		return nil, invalid("%v", err)
	}
	if len(m.GetSplitKeys()) == 0 || len(m.GetSplitKeys()) > 1000 {
		return nil, invalid("%d split keys; give 1 to 1000", len(m.GetSplitKeys()))
	}
	enc := make([][]byte, len(m.GetSplitKeys()))
	for i, k := range m.GetSplitKeys() {
		if err := checkKey(k); err != nil {
			return nil, err
		}
		enc[i] = keys.Encode(ns, k)
	}
	t, rerr, err := sv.resolve(m.GetContext(), true, enc...)
	if t == nil {
		if err != nil {
			return nil, err
		}
		return connect.NewResponse(&flaredbv1.SplitRegionResponse{RegionError: rerr}), nil
	}
	start, end := t.d.GetStartKey(), t.d.GetEndKey()
	// Highest key first: the region keeps shrinking from the right, so every
	// split applies to the same, led, region.
	slices.SortFunc(enc, func(a, b []byte) int { return bytes.Compare(b, a) })
	enc = slices.CompactFunc(enc, bytes.Equal)
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	for _, k := range enc {
		d := t.r.desc()
		if bytes.Equal(k, d.GetStartKey()) {
			continue // already a boundary
		}
		if err := sv.s.split(ctx, t.r, d, k); err != nil {
			return nil, connect.NewError(connect.CodeAborted, fmt.Errorf("split region %d at %q: %w", t.r.id, k, err))
		}
	}
	return connect.NewResponse(&flaredbv1.SplitRegionResponse{Regions: sv.s.regions.overlapping(start, end)}), nil
}
