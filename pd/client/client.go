// Package client is the Go client of the placement driver's Connect API
// (centra.pd.v1.PDService), used by FlareDB stores and region-aware
// clients. It takes a list of control-plane endpoints, finds the metadata
// shard's leader (following the NotLeader hint a follower returns), and
// retries with exponential backoff until the caller's context ends.
package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/gen/centra/pd/v1/pdv1connect"
	centratls "github.com/centra-cloud/centra/shared/tls"
)

// ErrNoEndpoints: New got an empty endpoint list.
var ErrNoEndpoints = errors.New("pd client: no endpoints")

// Client calls PD. It is safe for concurrent use.
type Client struct {
	endpoints  []string
	httpClient connect.HTTPClient
	opts       []connect.ClientOption
	minBackoff time.Duration
	maxBackoff time.Duration

	mu      sync.Mutex
	leader  string // known leader URL, "" when unknown
	next    int    // next endpoint to try when the leader is unknown
	clients map[string]pdv1connect.PDServiceClient
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (TLS, timeouts). The region
// heartbeat stream needs HTTP/2: h2c for http:// endpoints. The default
// speaks HTTP/2 only, over TLS and in clear text.
func WithHTTPClient(hc connect.HTTPClient) Option { return func(c *Client) { c.httpClient = hc } }

// WithClientOptions adds Connect client options (codec, interceptors).
func WithClientOptions(opts ...connect.ClientOption) Option {
	return func(c *Client) { c.opts = append(c.opts, opts...) }
}

// WithBackoff sets the first and the longest wait between rounds of
// retries over all endpoints (default 50 ms and 2 s).
func WithBackoff(first, longest time.Duration) Option {
	return func(c *Client) { c.minBackoff, c.maxBackoff = first, longest }
}

// New returns a client of the comma-separated endpoints ("host:port" or
// URLs; "http://" is assumed without a scheme). It does no I/O.
func New(endpoints string, opts ...Option) (*Client, error) {
	c := &Client{minBackoff: 50 * time.Millisecond, maxBackoff: 2 * time.Second, clients: map[string]pdv1connect.PDServiceClient{}}
	for _, e := range strings.Split(endpoints, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if !strings.Contains(e, "://") {
			e = "http://" + e
		}
		c.endpoints = append(c.endpoints, strings.TrimRight(e, "/"))
	}
	if len(c.endpoints) == 0 {
		return nil, ErrNoEndpoints
	}
	for _, o := range opts {
		o(c)
	}
	if c.httpClient == nil {
		c.httpClient = centratls.HTTPClient(nil, 5*time.Second)
	}
	if c.minBackoff <= 0 {
		c.minBackoff = time.Millisecond
	}
	c.maxBackoff = max(c.maxBackoff, c.minBackoff)
	return c, nil
}

// Leader returns the leader URL the client last used ("" if unknown).
func (c *Client) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

func (c *Client) target() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader != "" {
		return c.leader
	}
	t := c.endpoints[c.next%len(c.endpoints)]
	c.next++
	return t
}

func (c *Client) setLeader(url string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = url
}

func (c *Client) forget(url string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == url {
		c.leader = ""
	}
}

func (c *Client) service(url string) pdv1connect.PDServiceClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.clients[url]
	if !ok {
		s = pdv1connect.NewPDServiceClient(c.httpClient, url, c.opts...)
		c.clients[url] = s
	}
	return s
}

// leaderHint returns the leader URL a follower named in err, if any.
func leaderHint(err error) string {
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeUnavailable {
		return ""
	}
	for _, d := range cerr.Details() {
		if m, derr := d.Value(); derr == nil {
			if nl, ok := m.(*pdv1.NotLeader); ok && nl.GetLeaderUrl() != "" {
				return nl.GetLeaderUrl()
			}
		}
	}
	if _, after, ok := strings.Cut(cerr.Message(), "leader is "); ok {
		return strings.TrimSpace(after)
	}
	return ""
}

// retryable reports whether another node, or the same one later, may
// succeed.
func retryable(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeAborted, connect.CodeUnknown:
		return true
	}
	return false
}

// call runs f on the leader, following hints and retrying with backoff
// until ctx ends.
func call[T any](ctx context.Context, c *Client, f func(context.Context, pdv1connect.PDServiceClient) (T, error)) (T, error) {
	var zero T
	backoff := c.minBackoff
	failures := 0
	for {
		url := c.target()
		v, err := f(ctx, c.service(url))
		if err == nil {
			c.setLeader(url)
			return v, nil
		}
		if ctx.Err() != nil {
			return zero, fmt.Errorf("pd client: %w (last error from %s: %w)", ctx.Err(), url, err)
		}
		if !retryable(err) {
			return zero, err
		}
		hint := leaderHint(err)
		c.forget(url)
		failures++
		if hint != "" && hint != url && failures <= len(c.endpoints) {
			c.setLeader(hint)
			continue
		}
		if failures%len(c.endpoints) != 0 && hint == "" {
			continue // try the next endpoint at once
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, fmt.Errorf("pd client: %w (last error from %s: %w)", ctx.Err(), url, err)
		case <-t.C:
		}
		backoff = min(2*backoff, c.maxBackoff)
		if hint != "" && hint != url {
			c.setLeader(hint)
		}
	}
}

func unary[Req, Resp any](ctx context.Context, c *Client, req *Req,
	m func(pdv1connect.PDServiceClient) func(context.Context, *connect.Request[Req]) (*connect.Response[Resp], error),
) (*Resp, error) {
	return call(ctx, c, func(ctx context.Context, s pdv1connect.PDServiceClient) (*Resp, error) {
		resp, err := m(s)(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	})
}

// PutStore registers the store or updates its metadata. A conflicting
// store_id or address fails with connect.CodeAlreadyExists and a message
// naming both addresses; it is not retried.
func (c *Client) PutStore(ctx context.Context, st *metav1.Store) (*metav1.Store, error) {
	resp, err := unary(ctx, c, &pdv1.PutStoreRequest{Store: st}, func(s pdv1connect.PDServiceClient) func(context.Context, *connect.Request[pdv1.PutStoreRequest]) (*connect.Response[pdv1.PutStoreResponse], error) {
		return s.PutStore
	})
	return resp.GetStore(), err
}

// StoreHeartbeat sends the store's statistics; st, when set, registers or
// updates the store at the same time.
func (c *Client) StoreHeartbeat(ctx context.Context, stats *pdv1.StoreStats, st *metav1.Store) (*pdv1.StoreHeartbeatResponse, error) {
	return unary(ctx, c, &pdv1.StoreHeartbeatRequest{Stats: stats, Store: st}, func(s pdv1connect.PDServiceClient) func(context.Context, *connect.Request[pdv1.StoreHeartbeatRequest]) (*connect.Response[pdv1.StoreHeartbeatResponse], error) {
		return s.StoreHeartbeat
	})
}

// AllocID returns the first of count consecutive unique IDs.
func (c *Client) AllocID(ctx context.Context, count uint32) (uint64, error) {
	resp, err := unary(ctx, c, &pdv1.AllocIDRequest{Count: count}, func(s pdv1connect.PDServiceClient) func(context.Context, *connect.Request[pdv1.AllocIDRequest]) (*connect.Response[pdv1.AllocIDResponse], error) {
		return s.AllocID
	})
	return resp.GetFirstId(), err
}

// GetRegion returns the region holding key and its leader (nil, nil when
// no region holds it).
func (c *Client) GetRegion(ctx context.Context, key []byte) (*metav1.Region, *metav1.Peer, error) {
	resp, err := unary(ctx, c, &pdv1.GetRegionRequest{Key: key}, func(s pdv1connect.PDServiceClient) func(context.Context, *connect.Request[pdv1.GetRegionRequest]) (*connect.Response[pdv1.GetRegionResponse], error) {
		return s.GetRegion
	})
	return resp.GetRegion(), resp.GetLeader(), err
}

// GetRegionByID returns a region and its leader (nil, nil when unknown).
func (c *Client) GetRegionByID(ctx context.Context, id uint64) (*metav1.Region, *metav1.Peer, error) {
	resp, err := unary(ctx, c, &pdv1.GetRegionByIDRequest{RegionId: id}, func(s pdv1connect.PDServiceClient) func(context.Context, *connect.Request[pdv1.GetRegionByIDRequest]) (*connect.Response[pdv1.GetRegionByIDResponse], error) {
		return s.GetRegionByID
	})
	return resp.GetRegion(), resp.GetLeader(), err
}

// ScanRegions returns up to limit (0: all) regions overlapping [start, end).
func (c *Client) ScanRegions(ctx context.Context, start, end []byte, limit int32) ([]*pdv1.RegionWithLeader, error) {
	resp, err := unary(ctx, c, &pdv1.ScanRegionsRequest{StartKey: start, EndKey: end, Limit: limit}, func(s pdv1connect.PDServiceClient) func(context.Context, *connect.Request[pdv1.ScanRegionsRequest]) (*connect.Response[pdv1.ScanRegionsResponse], error) {
		return s.ScanRegions
	})
	return resp.GetRegions(), err
}

// AskSplit allocates the new region ID and peer IDs for splitting r.
func (c *Client) AskSplit(ctx context.Context, r *metav1.Region) (uint64, []uint64, error) {
	resp, err := unary(ctx, c, &pdv1.AskSplitRequest{Region: r}, func(s pdv1connect.PDServiceClient) func(context.Context, *connect.Request[pdv1.AskSplitRequest]) (*connect.Response[pdv1.AskSplitResponse], error) {
		return s.AskSplit
	})
	return resp.GetNewRegionId(), resp.GetNewPeerIds(), err
}

// GetStore returns one store with its statistics and state name.
func (c *Client) GetStore(ctx context.Context, id uint64) (*pdv1.GetStoreResponse, error) {
	return unary(ctx, c, &pdv1.GetStoreRequest{StoreId: id}, func(s pdv1connect.PDServiceClient) func(context.Context, *connect.Request[pdv1.GetStoreRequest]) (*connect.Response[pdv1.GetStoreResponse], error) {
		return s.GetStore
	})
}

// GetAllStores returns every store (without tombstones if asked).
func (c *Client) GetAllStores(ctx context.Context, excludeTombstones bool) ([]*pdv1.StoreInfo, error) {
	resp, err := unary(ctx, c, &pdv1.GetAllStoresRequest{ExcludeTombstoneStores: excludeTombstones}, func(s pdv1connect.PDServiceClient) func(context.Context, *connect.Request[pdv1.GetAllStoresRequest]) (*connect.Response[pdv1.GetAllStoresResponse], error) {
		return s.GetAllStores
	})
	return resp.GetStores(), err
}

// RegionHeartbeatStream is an open region heartbeat stream to the leader.
// When Send or Receive fails (the leader changed), Close it and open a new
// one with Client.RegionHeartbeat.
type RegionHeartbeatStream struct {
	stream *connect.BidiStreamForClient[pdv1.RegionHeartbeatRequest, pdv1.RegionHeartbeatResponse]
}

// RegionHeartbeat finds the leader and opens a heartbeat stream to it; ctx
// bounds the stream's life.
func (c *Client) RegionHeartbeat(ctx context.Context) (*RegionHeartbeatStream, error) {
	if c.Leader() == "" {
		if _, _, err := c.GetRegionByID(ctx, 0); err != nil {
			return nil, err
		}
	}
	url := c.Leader()
	if url == "" {
		return nil, errors.New("pd client: no leader found")
	}
	return &RegionHeartbeatStream{stream: c.service(url).RegionHeartbeat(ctx)}, nil
}

// Send sends one heartbeat.
func (s *RegionHeartbeatStream) Send(req *pdv1.RegionHeartbeatRequest) error {
	return s.stream.Send(req)
}

// Receive returns PD's next response.
func (s *RegionHeartbeatStream) Receive() (*pdv1.RegionHeartbeatResponse, error) {
	return s.stream.Receive()
}

// Close ends the stream.
func (s *RegionHeartbeatStream) Close() error {
	err := s.stream.CloseRequest()
	if rerr := s.stream.CloseResponse(); err == nil {
		err = rerr
	}
	return err
}

// ReportRegion sends one region heartbeat on a stream of its own and waits
// for PD's answer, so ctx bounds the whole exchange. A heartbeat PD dropped
// as stale is not an error (the reporter's view is older than PD's).
func (c *Client) ReportRegion(ctx context.Context, req *pdv1.RegionHeartbeatRequest) error {
	_, err := c.HeartbeatRegion(ctx, req)
	return err
}

// HeartbeatRegion is ReportRegion returning PD's answer, which may carry an
// operator step for the region's leader to execute.
func (c *Client) HeartbeatRegion(ctx context.Context, req *pdv1.RegionHeartbeatRequest) (*pdv1.RegionHeartbeatResponse, error) {
	s, err := c.RegionHeartbeat(ctx)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := s.Send(req); err != nil {
		c.forget(c.Leader())
		return nil, err
	}
	resp, err := s.Receive()
	if err != nil {
		c.forget(c.Leader())
		return nil, err
	}
	return resp, nil
}
