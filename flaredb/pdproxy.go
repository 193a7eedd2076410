package flaredb

import (
	"context"
	"net/http"

	"connectrpc.com/connect"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/gen/centra/pd/v1/pdv1connect"
)

// PDReader is the read-only part of PD a store proxies for clients.
type PDReader interface {
	GetRegion(ctx context.Context, key []byte) (*metav1.Region, *metav1.Peer, error)
	GetRegionByID(ctx context.Context, id uint64) (*metav1.Region, *metav1.Peer, error)
	ScanRegions(ctx context.Context, start, end []byte, limit int32) ([]*pdv1.RegionWithLeader, error)
	GetStore(ctx context.Context, id uint64) (*pdv1.GetStoreResponse, error)
	GetAllStores(ctx context.Context, excludeTombstones bool) ([]*pdv1.StoreInfo, error)
}

// PDProxyHandler serves PD's read-only region and store lookups on a
// store-only node by forwarding them to PD, so a client given any store's
// address (the runbook's `flaredb-client --endpoint http://STORE:2379`)
// finds its regions. Writes and heartbeats are not proxied: they answer
// Unimplemented, naming PD's address as the place to send them.
func PDProxyHandler(pd PDReader, opts ...connect.HandlerOption) (string, http.Handler) {
	return pdv1connect.NewPDServiceHandler(&pdProxy{pd: pd}, opts...)
}

type pdProxy struct {
	pdv1connect.UnimplementedPDServiceHandler
	pd PDReader
}

func (p *pdProxy) GetRegion(ctx context.Context, req *connect.Request[pdv1.GetRegionRequest]) (*connect.Response[pdv1.GetRegionResponse], error) {
	r, l, err := p.pd.GetRegion(ctx, req.Msg.GetKey())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pdv1.GetRegionResponse{Region: r, Leader: l}), nil
}

func (p *pdProxy) GetRegionByID(ctx context.Context, req *connect.Request[pdv1.GetRegionByIDRequest]) (*connect.Response[pdv1.GetRegionByIDResponse], error) {
	r, l, err := p.pd.GetRegionByID(ctx, req.Msg.GetRegionId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pdv1.GetRegionByIDResponse{Region: r, Leader: l}), nil
}

func (p *pdProxy) ScanRegions(ctx context.Context, req *connect.Request[pdv1.ScanRegionsRequest]) (*connect.Response[pdv1.ScanRegionsResponse], error) {
	rs, err := p.pd.ScanRegions(ctx, req.Msg.GetStartKey(), req.Msg.GetEndKey(), req.Msg.GetLimit())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pdv1.ScanRegionsResponse{Regions: rs}), nil
}

func (p *pdProxy) GetStore(ctx context.Context, req *connect.Request[pdv1.GetStoreRequest]) (*connect.Response[pdv1.GetStoreResponse], error) {
	resp, err := p.pd.GetStore(ctx, req.Msg.GetStoreId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

func (p *pdProxy) GetAllStores(ctx context.Context, req *connect.Request[pdv1.GetAllStoresRequest]) (*connect.Response[pdv1.GetAllStoresResponse], error) {
	ss, err := p.pd.GetAllStores(ctx, req.Msg.GetExcludeTombstoneStores())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pdv1.GetAllStoresResponse{Stores: ss}), nil
}
