package pd

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/chainfire/client"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/gen/centra/pd/v1/pdv1connect"
)

// ConnectHandler returns the path and handler of centra.pd.v1.PDService.
// On a follower every call fails with Unavailable, the message "not leader;
// leader is URL" and a NotLeader detail, which pd/client follows.
func (s *Server) ConnectHandler(opts ...connect.HandlerOption) (string, http.Handler) {
	return pdv1connect.NewPDServiceHandler(&service{s: s}, opts...)
}

// service adapts Server to the generated PDServiceHandler.
type service struct{ s *Server }

var _ pdv1connect.PDServiceHandler = (*service)(nil)

// connectCodes maps PD errors to Connect codes (the one table).
var connectCodes = []struct {
	err  error
	code connect.Code
}{
	{ErrInvalidArgument, connect.CodeInvalidArgument},
	{ErrStoreNotFound, connect.CodeNotFound},
	{ErrRegionNotFound, connect.CodeNotFound},
	{ErrSchedulerNotFound, connect.CodeNotFound},
	{ErrOperatorNotFound, connect.CodeNotFound},
	{ErrStoreTombstone, connect.CodeFailedPrecondition},
	{ErrTooFewStores, connect.CodeFailedPrecondition},
	{ErrStaleRegion, connect.CodeFailedPrecondition},
	{ErrStoreConflict, connect.CodeAlreadyExists},
	{ErrConcurrentUpdate, connect.CodeAborted},
	{ErrNotLeader, connect.CodeUnavailable},
	{client.ErrNotLeader, connect.CodeUnavailable},
	{context.DeadlineExceeded, connect.CodeDeadlineExceeded},
	{context.Canceled, connect.CodeCanceled},
}

// connectError converts err for the wire; a not-leader error gets the
// leader's URL in its message and a NotLeader detail.
func (sv *service) connectError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	code := connect.CodeInternal
	for _, e := range connectCodes {
		if errors.Is(err, e.err) {
			code = e.code
			break
		}
	}
	if code != connect.CodeUnavailable {
		return connect.NewError(code, err)
	}
	leader, lerr := sv.s.cfg.KV.LeaderURL(ctx)
	if lerr != nil || leader == "" {
		return connect.NewError(code, fmt.Errorf("not leader; leader unknown: %w", err))
	}
	cerr := connect.NewError(code, fmt.Errorf("not leader; leader is %s", leader))
	if d, derr := connect.NewErrorDetail(&pdv1.NotLeader{LeaderUrl: leader}); derr == nil {
		cerr.AddDetail(d)
	}
	return cerr
}

func (sv *service) PutStore(ctx context.Context, req *connect.Request[pdv1.PutStoreRequest]) (*connect.Response[pdv1.PutStoreResponse], error) {
	st, err := sv.s.PutStore(ctx, req.Msg.GetStore())
	if err != nil {
		return nil, sv.connectError(ctx, err)
	}
	return connect.NewResponse(&pdv1.PutStoreResponse{Store: st}), nil
}

func (sv *service) StoreHeartbeat(ctx context.Context, req *connect.Request[pdv1.StoreHeartbeatRequest]) (*connect.Response[pdv1.StoreHeartbeatResponse], error) {
	resp, err := sv.s.StoreHeartbeat(ctx, req.Msg.GetStats(), req.Msg.GetStore())
	if err != nil {
		return nil, sv.connectError(ctx, err)
	}
	return connect.NewResponse(resp), nil
}

// RegionHeartbeat answers each heartbeat in order, with the current step
// of the region's operator if it has one; a stale heartbeat is answered
// with stale=true and otherwise ignored, as PD drops it. The stream ends
// when this node stops leading.
func (sv *service) RegionHeartbeat(ctx context.Context, stream *connect.BidiStream[pdv1.RegionHeartbeatRequest, pdv1.RegionHeartbeatResponse]) error {
	for {
		req, err := stream.Receive()
		if err != nil {
			if errors.Is(err, context.Canceled) || connect.CodeOf(err) == connect.CodeCanceled {
				return nil
			}
			if isEOF(err) {
				return nil
			}
			return err
		}
		resp, err := sv.s.RegionHeartbeat(ctx, req)
		switch {
		case err == nil:
		case errors.Is(err, ErrStaleRegion):
			sv.s.log.Debug("dropped stale region heartbeat", "region_id", resp.RegionId, "err", err)
		case errors.Is(err, ErrConcurrentUpdate):
			// The cache is reloaded on the next heartbeat; answer anyway.
			resp = &pdv1.RegionHeartbeatResponse{RegionId: req.GetRegion().GetId(), RegionEpoch: req.GetRegion().GetRegionEpoch()}
		default:
			return sv.connectError(ctx, err)
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (sv *service) GetRegion(ctx context.Context, req *connect.Request[pdv1.GetRegionRequest]) (*connect.Response[pdv1.GetRegionResponse], error) {
	info, err := sv.s.GetRegion(ctx, req.Msg.GetKey())
	if errors.Is(err, ErrRegionNotFound) {
		return connect.NewResponse(&pdv1.GetRegionResponse{}), nil
	}
	if err != nil {
		return nil, sv.connectError(ctx, err)
	}
	return connect.NewResponse(&pdv1.GetRegionResponse{Region: info.Region, Leader: info.Leader}), nil
}

func (sv *service) GetRegionByID(ctx context.Context, req *connect.Request[pdv1.GetRegionByIDRequest]) (*connect.Response[pdv1.GetRegionByIDResponse], error) {
	info, err := sv.s.GetRegionByID(ctx, req.Msg.GetRegionId())
	if errors.Is(err, ErrRegionNotFound) {
		return connect.NewResponse(&pdv1.GetRegionByIDResponse{}), nil
	}
	if err != nil {
		return nil, sv.connectError(ctx, err)
	}
	return connect.NewResponse(&pdv1.GetRegionByIDResponse{Region: info.Region, Leader: info.Leader}), nil
}

func (sv *service) ScanRegions(ctx context.Context, req *connect.Request[pdv1.ScanRegionsRequest]) (*connect.Response[pdv1.ScanRegionsResponse], error) {
	if req.Msg.GetLimit() < 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%w: negative limit", ErrInvalidArgument))
	}
	infos, err := sv.s.ScanRegions(ctx, req.Msg.GetStartKey(), req.Msg.GetEndKey(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, sv.connectError(ctx, err)
	}
	out := &pdv1.ScanRegionsResponse{}
	for _, i := range infos {
		out.Regions = append(out.Regions, &pdv1.RegionWithLeader{Region: i.Region, Leader: i.Leader})
	}
	return connect.NewResponse(out), nil
}

func (sv *service) AllocID(ctx context.Context, req *connect.Request[pdv1.AllocIDRequest]) (*connect.Response[pdv1.AllocIDResponse], error) {
	n := max(req.Msg.GetCount(), 1)
	first, err := sv.s.AllocID(ctx, n)
	if err != nil {
		return nil, sv.connectError(ctx, err)
	}
	return connect.NewResponse(&pdv1.AllocIDResponse{FirstId: first, Count: n}), nil
}

func (sv *service) AskSplit(ctx context.Context, req *connect.Request[pdv1.AskSplitRequest]) (*connect.Response[pdv1.AskSplitResponse], error) {
	id, peers, err := sv.s.AskSplit(ctx, req.Msg.GetRegion())
	if err != nil {
		return nil, sv.connectError(ctx, err)
	}
	return connect.NewResponse(&pdv1.AskSplitResponse{NewRegionId: id, NewPeerIds: peers}), nil
}

func (sv *service) GetStore(ctx context.Context, req *connect.Request[pdv1.GetStoreRequest]) (*connect.Response[pdv1.GetStoreResponse], error) {
	info, err := sv.s.GetStore(ctx, req.Msg.GetStoreId())
	if err != nil {
		return nil, sv.connectError(ctx, err)
	}
	return connect.NewResponse(&pdv1.GetStoreResponse{Store: info.Store, Stats: info.Stats, StateName: info.StateName}), nil
}

func (sv *service) GetAllStores(ctx context.Context, req *connect.Request[pdv1.GetAllStoresRequest]) (*connect.Response[pdv1.GetAllStoresResponse], error) {
	infos, err := sv.s.Stores(ctx)
	if err != nil {
		return nil, sv.connectError(ctx, err)
	}
	out := &pdv1.GetAllStoresResponse{}
	for _, i := range infos {
		if req.Msg.GetExcludeTombstoneStores() && i.Store.GetState() == metav1.StoreState_STORE_STATE_TOMBSTONE {
			continue
		}
		out.Stores = append(out.Stores, &pdv1.StoreInfo{Store: i.Store, Stats: i.Stats, StateName: i.StateName})
	}
	return connect.NewResponse(out), nil
}
