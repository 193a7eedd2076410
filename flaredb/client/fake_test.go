package client

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/flaredb/internal/keys"
	flaredbv1 "github.com/centra-cloud/centra/gen/centra/flaredb/v1"
	"github.com/centra-cloud/centra/gen/centra/flaredb/v1/flaredbv1connect"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/gen/centra/pd/v1/pdv1connect"
)

// fakeCluster is an in-process FlareDB: stores serving KVService over h2c
// and a PD stub, sharing one key space. Regions, leaders and namespace
// modes are plain data that tests change to provoke region errors.
type fakeCluster struct {
	t *testing.T

	mu       sync.Mutex
	regions  map[uint64]*metav1.Region // what the stores know
	leaders  map[uint64]uint64         // region ID -> leader store ID (0: none)
	children map[uint64][]uint64       // split history, for EpochNotMatch
	pdRegion map[uint64]*metav1.Region // PD's view (may lag)
	pdLeader map[uint64]uint64
	data     map[string][]byte // encoded key -> value
	eventual map[string]bool   // namespaces served by followers
	nextID   uint64
	calls    []fakeCall
	// hook runs before each request is checked; a non-nil region error or
	// error is the answer.
	hook func(store uint64, method string, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error)
	// scanFail makes the next Scan of a region fail after that many pairs.
	scanFail map[uint64]int
	// parentOnly makes EpochNotMatch name only the addressed region (as
	// the store does for requests without keys: Scan, DeleteRange).
	parentOnly bool

	stores map[uint64]*httptest.Server
	pd     *httptest.Server
}

type fakeCall struct {
	store  uint64
	method string
	region uint64
	ns     string
}

// newFakeCluster starts nStores stores and PD; the key space is split at
// the given user keys of namespace "default" (and led by store 1).
func newFakeCluster(t *testing.T, nStores int, splits ...string) *fakeCluster {
	fc := &fakeCluster{
		t: t, regions: map[uint64]*metav1.Region{}, leaders: map[uint64]uint64{}, children: map[uint64][]uint64{},
		data: map[string][]byte{}, eventual: map[string]bool{}, nextID: 100, scanFail: map[uint64]int{},
		stores: map[uint64]*httptest.Server{},
	}
	for id := uint64(1); id <= uint64(nStores); id++ {
		mux := http.NewServeMux()
		mux.Handle(flaredbv1connect.NewKVServiceHandler(&fakeKV{fc: fc, store: id}))
		fc.stores[id] = startH2C(mux)
	}
	mux := http.NewServeMux()
	mux.Handle(pdv1connect.NewPDServiceHandler(&fakePD{fc: fc}))
	fc.pd = startH2C(mux)
	t.Cleanup(func() {
		fc.pd.Close()
		for _, s := range fc.stores {
			s.Close()
		}
	})
	bounds := []string{""}
	for _, s := range splits {
		bounds = append(bounds, string(keys.Encode("default", []byte(s))))
	}
	bounds = append(bounds, "")
	for i := 0; i+1 < len(bounds); i++ {
		r := &metav1.Region{Id: fc.newID(), StartKey: []byte(bounds[i]), EndKey: []byte(bounds[i+1]), RegionEpoch: &metav1.RegionEpoch{ConfVer: 1, Version: 1}}
		for s := uint64(1); s <= uint64(nStores); s++ {
			r.Peers = append(r.Peers, &metav1.Peer{Id: fc.newID(), StoreId: s})
		}
		fc.regions[r.Id] = r
		fc.leaders[r.Id] = 1
	}
	fc.syncPD()
	return fc
}

func startH2C(h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	return srv
}

func (fc *fakeCluster) newID() uint64 { fc.nextID++; return fc.nextID }

// syncPD makes PD's view the stores' view.
func (fc *fakeCluster) syncPD() {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.pdRegion = map[uint64]*metav1.Region{}
	fc.pdLeader = map[uint64]uint64{}
	for id, r := range fc.regions {
		fc.pdRegion[id] = r
		fc.pdLeader[id] = fc.leaders[id]
	}
}

func (fc *fakeCluster) addr(store uint64) string { return fc.stores[store].Listener.Addr().String() }

func (fc *fakeCluster) client(opts ...Option) *Client {
	fc.t.Helper()
	c, err := New(fc.pd.URL, append([]Option{WithBackoff(time.Millisecond, 10*time.Millisecond)}, opts...)...)
	if err != nil {
		fc.t.Fatal(err)
	}
	fc.t.Cleanup(func() { _ = c.Close() })
	return c
}

// regionOf returns the ID of the region holding the user key of ns.
func (fc *fakeCluster) regionOf(ns, key string) uint64 {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.regionOfLocked(ns, key)
}

func (fc *fakeCluster) regionOfLocked(ns, key string) uint64 {
	enc := keys.Encode(ns, []byte(key))
	for id, r := range fc.regions {
		if keys.InRange(enc, r.StartKey, r.EndKey) {
			return id
		}
	}
	return 0
}

// split splits the region holding the user key of "default" at it; the
// new region (the upper half) gets the same stores and leader. PD learns
// of it only if syncPD is called.
func (fc *fakeCluster) split(key string) uint64 {
	id := fc.regionOf("default", key)
	fc.mu.Lock()
	defer fc.mu.Unlock()
	old := fc.regions[id]
	at := keys.Encode("default", []byte(key))
	left := proto.Clone(old).(*metav1.Region)
	left.EndKey = at
	left.RegionEpoch.Version++
	right := proto.Clone(left).(*metav1.Region)
	right.Id = fc.newID()
	right.StartKey, right.EndKey = at, old.EndKey
	for _, p := range right.Peers {
		p.Id = fc.newID()
	}
	fc.regions[left.Id], fc.regions[right.Id] = left, right
	fc.leaders[right.Id] = fc.leaders[left.Id]
	fc.children[left.Id] = append(fc.children[left.Id], right.Id)
	return right.Id
}

// setLeader moves a region's leadership (0: no leader) in the stores' view.
func (fc *fakeCluster) setLeader(region, store uint64) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.leaders[region] = store
}

func (fc *fakeCluster) put(ns, key, value string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.data[string(keys.Encode(ns, []byte(key)))] = []byte(value)
}

func (fc *fakeCluster) value(ns, key string) (string, bool) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	v, ok := fc.data[string(keys.Encode(ns, []byte(key)))]
	return string(v), ok
}

// callsTo returns the calls of a method (all methods if "") to a store (0:
// any).
func (fc *fakeCluster) callsTo(store uint64, method string) []fakeCall {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var out []fakeCall
	for _, c := range fc.calls {
		if (store == 0 || c.store == store) && (method == "" || c.method == method) {
			out = append(out, c)
		}
	}
	return out
}

func (fc *fakeCluster) resetCalls() {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.calls = nil
}

func (fc *fakeCluster) setHook(h func(store uint64, method string, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error)) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.hook = h
}

func (fc *fakeCluster) peerOn(r *metav1.Region, store uint64) *metav1.Peer {
	for _, p := range r.Peers {
		if p.StoreId == store {
			return p
		}
	}
	return nil
}

// family returns the current regions descending from id.
func (fc *fakeCluster) family(id uint64) []*metav1.Region {
	out := []*metav1.Region{fc.regions[id]}
	if fc.parentOnly {
		return out
	}
	for _, c := range fc.children[id] {
		out = append(out, fc.family(c)...)
	}
	return out
}

// check decides whether store may serve a request in rctx.Region for the
// encoded keys: it returns the region error, or the region.
func (fc *fakeCluster) check(store uint64, method string, rctx *flaredbv1.Context, write bool, encKeys ...[]byte) (*metav1.Region, *flaredbv1.RegionError, error) {
	fc.mu.Lock()
	hook := fc.hook
	fc.calls = append(fc.calls, fakeCall{store: store, method: method, region: rctx.GetRegionId(), ns: rctx.GetNamespace()})
	fc.mu.Unlock()
	if hook != nil {
		if rerr, err := hook(store, method, rctx); rerr != nil || err != nil {
			return nil, rerr, err
		}
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	r := fc.regions[rctx.GetRegionId()]
	if r == nil || fc.peerOn(r, store) == nil {
		return nil, &flaredbv1.RegionError{Message: "region not found", RegionNotFound: &flaredbv1.RegionNotFound{RegionId: rctx.GetRegionId()}}, nil
	}
	if r.RegionEpoch.GetVersion() != rctx.GetRegionEpoch().GetVersion() { // conf_ver is not checked, as in the proto
		return nil, &flaredbv1.RegionError{Message: "epoch not match", EpochNotMatch: &flaredbv1.EpochNotMatch{CurrentRegions: fc.family(r.Id)}}, nil
	}
	if leader := fc.leaders[r.Id]; leader != store && (write || !fc.eventual[rctx.GetNamespace()]) {
		nl := &flaredbv1.NotLeader{RegionId: r.Id}
		if leader != 0 {
			nl.Leader = fc.peerOn(r, leader)
			nl.LeaderAddress = fc.addr(leader)
		}
		return nil, &flaredbv1.RegionError{Message: "not leader", NotLeader: nl}, nil
	}
	for _, k := range encKeys {
		if !keys.InRange(k, r.StartKey, r.EndKey) {
			return nil, &flaredbv1.RegionError{KeyNotInRegion: &flaredbv1.KeyNotInRegion{Key: k, RegionId: r.Id, StartKey: r.StartKey, EndKey: r.EndKey}}, nil
		}
	}
	return r, nil, nil
}

type fakeKV struct {
	flaredbv1connect.UnimplementedKVServiceHandler // SplitRegion
	fc                                             *fakeCluster
	store                                          uint64
}

func enc(rctx *flaredbv1.Context, key []byte) []byte {
	return keys.Encode(rctx.GetNamespace(), key)
}

func (k *fakeKV) Get(_ context.Context, req *connect.Request[flaredbv1.GetRequest]) (*connect.Response[flaredbv1.GetResponse], error) {
	m := req.Msg
	_, rerr, err := k.fc.check(k.store, "Get", m.Context, false, enc(m.Context, m.Key))
	if err != nil || rerr != nil {
		return connect.NewResponse(&flaredbv1.GetResponse{RegionError: rerr}), err
	}
	k.fc.mu.Lock()
	defer k.fc.mu.Unlock()
	v, ok := k.fc.data[string(enc(m.Context, m.Key))]
	return connect.NewResponse(&flaredbv1.GetResponse{Value: v, NotFound: !ok}), nil
}

func (k *fakeKV) BatchGet(_ context.Context, req *connect.Request[flaredbv1.BatchGetRequest]) (*connect.Response[flaredbv1.BatchGetResponse], error) {
	m := req.Msg
	var ek [][]byte
	for _, key := range m.Keys {
		ek = append(ek, enc(m.Context, key))
	}
	_, rerr, err := k.fc.check(k.store, "BatchGet", m.Context, false, ek...)
	if err != nil || rerr != nil {
		return connect.NewResponse(&flaredbv1.BatchGetResponse{RegionError: rerr}), err
	}
	k.fc.mu.Lock()
	defer k.fc.mu.Unlock()
	resp := &flaredbv1.BatchGetResponse{}
	for i, key := range m.Keys {
		if v, ok := k.fc.data[string(ek[i])]; ok {
			resp.Pairs = append(resp.Pairs, &flaredbv1.KvPair{Key: key, Value: v})
		}
	}
	return connect.NewResponse(resp), nil
}

func (k *fakeKV) Put(_ context.Context, req *connect.Request[flaredbv1.PutRequest]) (*connect.Response[flaredbv1.PutResponse], error) {
	m := req.Msg
	_, rerr, err := k.fc.check(k.store, "Put", m.Context, true, enc(m.Context, m.Key))
	if err != nil || rerr != nil {
		return connect.NewResponse(&flaredbv1.PutResponse{RegionError: rerr}), err
	}
	k.fc.mu.Lock()
	defer k.fc.mu.Unlock()
	k.fc.data[string(enc(m.Context, m.Key))] = m.Value
	return connect.NewResponse(&flaredbv1.PutResponse{}), nil
}

func (k *fakeKV) BatchPut(_ context.Context, req *connect.Request[flaredbv1.BatchPutRequest]) (*connect.Response[flaredbv1.BatchPutResponse], error) {
	m := req.Msg
	var ek [][]byte
	for _, p := range m.Pairs {
		ek = append(ek, enc(m.Context, p.Key))
	}
	_, rerr, err := k.fc.check(k.store, "BatchPut", m.Context, true, ek...)
	if err != nil || rerr != nil {
		return connect.NewResponse(&flaredbv1.BatchPutResponse{RegionError: rerr}), err
	}
	k.fc.mu.Lock()
	defer k.fc.mu.Unlock()
	for i, p := range m.Pairs {
		k.fc.data[string(ek[i])] = p.Value
	}
	return connect.NewResponse(&flaredbv1.BatchPutResponse{}), nil
}

func (k *fakeKV) Delete(_ context.Context, req *connect.Request[flaredbv1.DeleteRequest]) (*connect.Response[flaredbv1.DeleteResponse], error) {
	m := req.Msg
	_, rerr, err := k.fc.check(k.store, "Delete", m.Context, true, enc(m.Context, m.Key))
	if err != nil || rerr != nil {
		return connect.NewResponse(&flaredbv1.DeleteResponse{RegionError: rerr}), err
	}
	k.fc.mu.Lock()
	defer k.fc.mu.Unlock()
	delete(k.fc.data, string(enc(m.Context, m.Key)))
	return connect.NewResponse(&flaredbv1.DeleteResponse{}), nil
}

// inRegion returns the sorted encoded keys of [start, end) of the
// namespace inside r.
func (fc *fakeCluster) inRegion(r *metav1.Region, ns string, start, end []byte) []string {
	s, e := keys.Range(ns, start, end)
	s, e, ok := keys.Clamp(s, e, r.StartKey, r.EndKey)
	if !ok {
		return nil
	}
	var out []string
	for k := range fc.data {
		if keys.InRange([]byte(k), s, e) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (k *fakeKV) DeleteRange(_ context.Context, req *connect.Request[flaredbv1.DeleteRangeRequest]) (*connect.Response[flaredbv1.DeleteRangeResponse], error) {
	m := req.Msg
	r, rerr, err := k.fc.check(k.store, "DeleteRange", m.Context, true)
	if err != nil || rerr != nil {
		return connect.NewResponse(&flaredbv1.DeleteRangeResponse{RegionError: rerr}), err
	}
	k.fc.mu.Lock()
	defer k.fc.mu.Unlock()
	for _, key := range k.fc.inRegion(r, m.Context.GetNamespace(), m.StartKey, m.EndKey) {
		delete(k.fc.data, key)
	}
	return connect.NewResponse(&flaredbv1.DeleteRangeResponse{}), nil
}

func (k *fakeKV) Scan(_ context.Context, req *connect.Request[flaredbv1.ScanRequest], stream *connect.ServerStream[flaredbv1.ScanResponse]) error {
	m := req.Msg
	r, rerr, err := k.fc.check(k.store, "Scan", m.Context, false)
	if err != nil {
		return err
	}
	if rerr != nil {
		return stream.Send(&flaredbv1.ScanResponse{RegionError: rerr})
	}
	k.fc.mu.Lock()
	ks := k.fc.inRegion(r, m.Context.GetNamespace(), m.StartKey, m.EndKey)
	if m.Reverse {
		slices.Reverse(ks)
	}
	if m.Limit > 0 && len(ks) > int(m.Limit) {
		ks = ks[:m.Limit]
	}
	var pairs []*flaredbv1.KvPair
	for _, e := range ks {
		_, key, _ := keys.Decode([]byte(e))
		p := &flaredbv1.KvPair{Key: key}
		if !m.KeyOnly {
			p.Value = k.fc.data[e]
		}
		pairs = append(pairs, p)
	}
	failAfter, fail := k.fc.scanFail[r.Id]
	delete(k.fc.scanFail, r.Id)
	k.fc.mu.Unlock()
	if len(pairs) == 0 {
		return stream.Send(&flaredbv1.ScanResponse{})
	}
	for i := 0; i < len(pairs); i += 2 { // chunks of two pairs
		if fail && i >= failAfter {
			return connect.NewError(connect.CodeUnavailable, errors.New("stream broken"))
		}
		if err := stream.Send(&flaredbv1.ScanResponse{Pairs: pairs[i:min(i+2, len(pairs))]}); err != nil {
			return err
		}
	}
	return nil
}

func (k *fakeKV) CompareAndSwap(_ context.Context, req *connect.Request[flaredbv1.CompareAndSwapRequest]) (*connect.Response[flaredbv1.CompareAndSwapResponse], error) {
	m := req.Msg
	_, rerr, err := k.fc.check(k.store, "CompareAndSwap", m.Context, true, enc(m.Context, m.Key))
	if err != nil || rerr != nil {
		return connect.NewResponse(&flaredbv1.CompareAndSwapResponse{RegionError: rerr}), err
	}
	k.fc.mu.Lock()
	defer k.fc.mu.Unlock()
	ek := string(enc(m.Context, m.Key))
	cur, ok := k.fc.data[ek]
	resp := &flaredbv1.CompareAndSwapResponse{PreviousValue: cur, PreviousNotExist: !ok}
	if (m.PreviousNotExist && !ok) || (!m.PreviousNotExist && ok && bytes.Equal(cur, m.PreviousValue)) {
		resp.Succeeded = true
		if m.Delete {
			delete(k.fc.data, ek)
		} else {
			k.fc.data[ek] = m.Value
		}
	}
	return connect.NewResponse(resp), nil
}

// fakePD serves PD's read methods from the PD view.
type fakePD struct {
	pdv1connect.UnimplementedPDServiceHandler
	fc *fakeCluster
}

func (p *fakePD) leaderPeer(r *metav1.Region) *metav1.Peer {
	if l := p.fc.pdLeader[r.Id]; l != 0 {
		return p.fc.peerOn(r, l)
	}
	return nil
}

func (p *fakePD) GetRegion(_ context.Context, req *connect.Request[pdv1.GetRegionRequest]) (*connect.Response[pdv1.GetRegionResponse], error) {
	p.fc.mu.Lock()
	defer p.fc.mu.Unlock()
	p.fc.calls = append(p.fc.calls, fakeCall{method: "PD.GetRegion"})
	for _, r := range p.fc.pdRegion {
		if keys.InRange(req.Msg.Key, r.StartKey, r.EndKey) {
			return connect.NewResponse(&pdv1.GetRegionResponse{Region: r, Leader: p.leaderPeer(r)}), nil
		}
	}
	return connect.NewResponse(&pdv1.GetRegionResponse{}), nil
}

func (p *fakePD) ScanRegions(_ context.Context, req *connect.Request[pdv1.ScanRegionsRequest]) (*connect.Response[pdv1.ScanRegionsResponse], error) {
	p.fc.mu.Lock()
	defer p.fc.mu.Unlock()
	p.fc.calls = append(p.fc.calls, fakeCall{method: "PD.ScanRegions"})
	resp := &pdv1.ScanRegionsResponse{}
	for _, r := range p.fc.pdRegion {
		if _, _, ok := keys.Clamp(req.Msg.StartKey, req.Msg.EndKey, r.StartKey, r.EndKey); ok {
			resp.Regions = append(resp.Regions, &pdv1.RegionWithLeader{Region: r, Leader: p.leaderPeer(r)})
		}
	}
	sort.Slice(resp.Regions, func(i, j int) bool {
		return bytes.Compare(resp.Regions[i].Region.StartKey, resp.Regions[j].Region.StartKey) < 0
	})
	return connect.NewResponse(resp), nil
}

func (p *fakePD) GetStore(_ context.Context, req *connect.Request[pdv1.GetStoreRequest]) (*connect.Response[pdv1.GetStoreResponse], error) {
	s, ok := p.fc.stores[req.Msg.StoreId]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("store not found"))
	}
	return connect.NewResponse(&pdv1.GetStoreResponse{Store: &metav1.Store{Id: req.Msg.StoreId, Address: s.Listener.Addr().String()}}), nil
}

func (p *fakePD) GetAllStores(context.Context, *connect.Request[pdv1.GetAllStoresRequest]) (*connect.Response[pdv1.GetAllStoresResponse], error) {
	resp := &pdv1.GetAllStoresResponse{}
	for id, s := range p.fc.stores {
		resp.Stores = append(resp.Stores, &pdv1.StoreInfo{Store: &metav1.Store{Id: id, Address: s.Listener.Addr().String()}})
	}
	return connect.NewResponse(resp), nil
}
