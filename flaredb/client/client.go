package client

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/gen/centra/flaredb/v1/flaredbv1connect"
	pdclient "github.com/centra-cloud/centra/pd/client"
	centratls "github.com/centra-cloud/centra/shared/tls"
)

// KvPair is a key and its value (empty in key-only scans).
type KvPair struct {
	Key   []byte
	Value []byte
}

// Client reads and writes FlareDB keys. It is safe for concurrent use.
type Client struct {
	pd          *pdclient.Client
	httpClient  connect.HTTPClient
	tls         *tls.Config // WithTLS, for the client's own HTTP client
	ownsHTTP    bool
	connectOpts []connect.ClientOption
	scheme      string // of store URLs: "http" or "https", as the endpoints
	localAddr   string
	localID     atomic.Uint64 // WithLocalStoreID, or found for localAddr
	minBackoff  time.Duration
	maxBackoff  time.Duration
	budget      time.Duration // retry budget of contexts without a deadline

	regions regionCache

	mu         sync.Mutex
	closed     bool
	stores     map[uint64]string // store ID -> API address
	kvs        map[string]flaredbv1connect.KVServiceClient
	strong     map[string]bool // namespaces a local follower refused to read
	localKnown time.Time       // when localAddr was last looked up
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client of every call, to PD and to stores
// (TLS and client certificates come through it). The default speaks
// HTTP/2 only: over TLS, and in clear text (h2c) to http:// endpoints.
// An *http.Client is a connect.HTTPClient.
func WithHTTPClient(hc connect.HTTPClient) Option {
	return func(c *Client) { c.httpClient = hc }
}

// WithTLS sets the TLS config (CA, client certificate) of the client's own
// HTTP client, which it closes with Close; https:// endpoints need it
// unless the system's CAs sign the nodes' certificates and no client
// certificate is required. WithHTTPClient overrides it.
func WithTLS(cfg *tls.Config) Option {
	return func(c *Client) { c.tls = cfg }
}

// WithClientOptions adds Connect client options (protocol, interceptors)
// to every call.
func WithClientOptions(opts ...connect.ClientOption) Option {
	return func(c *Client) { c.connectOpts = append(c.connectOpts, opts...) }
}

// WithLocalStore names the store "near" this client by its API address
// (host:port, as the store registered it with PD or resolving to the same
// IPs): reads of regions with a replica on it are sent there first, so
// eventual namespaces are read from that replica.
func WithLocalStore(addr string) Option {
	return func(c *Client) { c.localAddr = addr }
}

// WithLocalStoreID is WithLocalStore by store ID.
func WithLocalStoreID(id uint64) Option {
	return func(c *Client) { c.localID.Store(id) }
}

// WithBackoff sets the first and the longest wait between retries
// (default 20 ms and 1 s).
func WithBackoff(first, longest time.Duration) Option {
	return func(c *Client) { c.minBackoff, c.maxBackoff = first, longest }
}

// WithRetryTimeout bounds the retries of an operation whose context has no
// deadline (default 20 s). Contexts with a deadline retry until it.
func WithRetryTimeout(d time.Duration) Option {
	return func(c *Client) { c.budget = d }
}

// New returns a client of the comma-separated endpoints: API URLs of any
// centra nodes ("http://host:2379", "https://..." or "host:port" for
// http). Stores are called with the endpoints' scheme at the address they
// registered with PD. New does no I/O.
func New(endpoints string, opts ...Option) (*Client, error) {
	c := &Client{
		scheme:     "http",
		minBackoff: 20 * time.Millisecond,
		maxBackoff: time.Second,
		budget:     20 * time.Second,
		stores:     map[uint64]string{},
		kvs:        map[string]flaredbv1connect.KVServiceClient{},
		strong:     map[string]bool{},
	}
	for _, o := range opts {
		o(c)
	}
	for _, e := range strings.Split(endpoints, ",") {
		if strings.HasPrefix(strings.TrimSpace(e), "https://") {
			c.scheme = "https"
		}
	}
	if c.httpClient == nil {
		c.httpClient = centratls.HTTPClient(c.tls, 5*time.Second)
		c.ownsHTTP = true
	}
	if c.minBackoff <= 0 {
		c.minBackoff = time.Millisecond
	}
	c.maxBackoff = max(c.maxBackoff, c.minBackoff)
	if c.budget <= 0 {
		c.budget = 20 * time.Second
	}
	pd, err := pdclient.New(endpoints,
		pdclient.WithHTTPClient(c.httpClient),
		pdclient.WithClientOptions(c.connectOpts...),
		pdclient.WithBackoff(c.minBackoff, c.maxBackoff))
	if err != nil {
		return nil, err
	}
	c.pd = pd
	return c, nil
}

// Close releases the client's idle connections (when it made its own HTTP
// client). Calls after Close fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if hc, ok := c.httpClient.(*http.Client); ok && c.ownsHTTP {
		hc.CloseIdleConnections()
	}
	return nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// kv returns the KVService client of a store address.
func (c *Client) kv(addr string) flaredbv1connect.KVServiceClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.kvs[addr]
	if !ok {
		url := addr
		if !strings.Contains(url, "://") {
			url = c.scheme + "://" + addr
		}
		k = flaredbv1connect.NewKVServiceClient(c.httpClient, strings.TrimRight(url, "/"), c.connectOpts...)
		c.kvs[addr] = k
	}
	return k
}

// storeAddr returns the API address of a store, asking PD on a miss.
func (c *Client) storeAddr(ctx context.Context, id uint64) (string, error) {
	c.mu.Lock()
	addr, ok := c.stores[id]
	c.mu.Unlock()
	if ok {
		return addr, nil
	}
	ctx, cancel := c.pdContext(ctx)
	defer cancel()
	resp, err := c.pd.GetStore(ctx, id)
	if err != nil {
		return "", err
	}
	addr = resp.GetStore().GetAddress()
	if addr == "" {
		return "", &StoreError{StoreID: id, Err: ErrNoPeer}
	}
	c.setStoreAddr(id, addr)
	return addr, nil
}

func (c *Client) setStoreAddr(id uint64, addr string) {
	if id == 0 || addr == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stores[id] = addr
}

// pdContext bounds a PD call, which retries until its context ends, by
// the retry budget when ctx has no deadline.
func (c *Client) pdContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.budget)
}

// localStore returns the ID of the WithLocalStore store (0: none or not
// known yet). It asks PD for every store once, and again at most every
// 10 s while the address matches none.
func (c *Client) localStore(ctx context.Context) uint64 {
	if id := c.localID.Load(); id != 0 || c.localAddr == "" {
		return id
	}
	c.mu.Lock()
	if time.Since(c.localKnown) < 10*time.Second {
		c.mu.Unlock()
		return c.localID.Load()
	}
	c.localKnown = time.Now()
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	stores, err := c.pd.GetAllStores(ctx, true)
	if err != nil {
		c.mu.Lock()
		c.localKnown = time.Time{}
		c.mu.Unlock()
		return 0
	}
	var id uint64
	for _, s := range stores {
		c.setStoreAddr(s.GetStore().GetId(), s.GetStore().GetAddress())
		if id == 0 && s.GetStore().GetAddress() == c.localAddr {
			id = s.GetStore().GetId()
		}
	}
	for _, s := range stores {
		if id == 0 && sameAddr(ctx, s.GetStore().GetAddress(), c.localAddr) {
			id = s.GetStore().GetId()
		}
	}
	c.localID.CompareAndSwap(0, id)
	return c.localID.Load()
}

// sameAddr reports whether two host:port addresses have the same port and
// hosts resolving to a common IP.
func sameAddr(ctx context.Context, a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	ipsA, err1 := net.DefaultResolver.LookupHost(ctx, ha)
	ipsB, err2 := net.DefaultResolver.LookupHost(ctx, hb)
	if err1 != nil || err2 != nil {
		return false
	}
	for _, x := range ipsA {
		for _, y := range ipsB {
			if net.ParseIP(x).Equal(net.ParseIP(y)) {
				return true
			}
		}
	}
	return false
}

// isStrong reports whether a follower of the local store refused a read
// of namespace ns.
func (c *Client) isStrong(ns string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.strong[ns]
}

func (c *Client) setStrong(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.strong[ns] = true
}
