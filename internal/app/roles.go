package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/centra-cloud/centra/chainfire"
	"github.com/centra-cloud/centra/config"
	"github.com/centra-cloud/centra/flaredb"
	"github.com/centra-cloud/centra/pd"
	pdclient "github.com/centra-cloud/centra/pd/client"
	centratls "github.com/centra-cloud/centra/shared/tls"
)

// routes is what the API listener serves: Chainfire and the placement
// driver on control-plane nodes, the store agent's readiness on stores.
type routes struct {
	cf    *chainfire.Server
	pd    *pd.Server
	store *storeAgent
	ts    *timeseries
}

// ready returns nil once every role of the process serves.
func (r routes) ready(ctx context.Context) error {
	if r.cf != nil {
		if err := r.cf.Ready(ctx); err != nil {
			return err
		}
	}
	if r.store != nil && !r.store.registered.Load() {
		return errors.New("the store has not registered with PD yet")
	}
	return nil
}

// startPD runs the placement driver on the metadata shard's system
// keyspace; its decisions run on the shard's leader, and followers forward
// its HTTP API there.
func (a *App) startPD(ctx context.Context) error {
	hc, err := a.httpClient()
	if err != nil {
		return err
	}
	a.pd, err = pd.New(pd.Config{
		KV: a.cf, Logger: a.log, Registry: a.reg, HTTPClient: hc,
		ClusterVersion: chainfire.Version,
		MaxReplicas:    a.defaultMaxReplicas(),
		Members: func(ctx context.Context) ([]pd.Member, error) {
			ms, err := a.cf.MemberList(ctx)
			if err != nil {
				return nil, err
			}
			out := make([]pd.Member, len(ms))
			for i, m := range ms {
				out[i] = pd.Member{Name: m.Name, MemberID: m.NodeId, PeerURLs: m.PeerUrls, ClientURLs: m.ClientUrls}
			}
			return out, nil
		},
	})
	if err != nil {
		return err
	}
	return a.pd.Start(ctx)
}

// storeAgent is the store role: registration with PD, heartbeats, region
// replicas and the KV service.
type storeAgent struct {
	store      *flaredb.Store
	pd         *pdclient.Client
	registered atomic.Bool
	stop       context.CancelFunc
	done       chan struct{}
}

// startStore registers this process as a FlareDB store with PD (pd_addr; in
// the single-process dev mode, this node's own API) and heartbeats. A
// refusal (store_id taken by another address, data directory of another
// store) stops the process.
func (a *App) startStore() error {
	c := &a.cfg
	endpoints := c.PDAddr
	if len(endpoints) == 0 && c.HasRole("control_plane") {
		endpoints = []string{a.api.addr()}
	}
	if len(endpoints) == 0 {
		return errors.New("centra: the store role needs pd_addr (the control-plane API addresses)")
	}
	scheme := "http://"
	if c.Network.TLS.Enabled() {
		scheme = "https://"
	}
	for i, e := range endpoints {
		if !strings.Contains(e, "://") {
			endpoints[i] = scheme + e
		}
	}
	hc, err := a.httpClient()
	if err != nil {
		return err
	}
	client, err := pdclient.New(strings.Join(endpoints, ","), pdclient.WithHTTPClient(hc))
	if err != nil {
		return err
	}
	addr, err := advertisedAddr(a.api.addr(), c.Network.APIAddr, endpoints[0])
	if err != nil {
		return err
	}
	if err := a.startStoreNode(addr); err != nil {
		return err
	}
	r := c.Region
	st, err := flaredb.NewStore(flaredb.StoreConfig{
		ID: c.EffectiveStoreID(), Address: addr, PeerAddress: a.node.RaftAddress(),
		DataDir: c.EffectiveDataDir(), PD: client, Logger: a.log,
		Node: a.node, DB: a.db, NamespaceModes: c.NamespaceModes, Registry: a.reg,
		Split: flaredb.SplitConfig{
			MaxSize: r.MaxSize, SplitSize: r.SplitSize, MaxKeys: r.MaxKeys, SplitKeys: r.SplitKeys,
			CheckInterval: time.Duration(r.SplitCheckIntervalMs) * time.Millisecond,
		},
		HeartbeatInterval:       time.Duration(r.StoreHeartbeatIntervalMs) * time.Millisecond,
		RegionHeartbeatInterval: time.Duration(r.HeartbeatIntervalMs) * time.Millisecond,
		PeerCheckInterval:       time.Duration(r.PeerCheckIntervalMs) * time.Millisecond,
		MaxSnapshotSending:      int(r.MaxSnapshotSending),
		MaxSnapshotReceiving:    int(r.MaxSnapshotReceiving),
	})
	if err != nil {
		return err
	}
	a.node.SetPeerNamer(st.PeerName)
	a.store = &storeAgent{store: st, pd: client, done: make(chan struct{})}
	return nil
}

// runStore starts the store role's background work once the API serves
// (in the dev mode, PD is this process's own API).
func (a *App) runStore() {
	ctx, cancel := context.WithCancel(context.Background())
	a.store.stop = cancel
	go func() {
		defer close(a.store.done)
		err := a.store.store.Run(ctx, func() { a.store.registered.Store(true) })
		if err != nil && ctx.Err() == nil {
			a.fail(err)
		}
	}()
}

// advertisedAddr is the store's API address as PD and clients reach it:
// the configured address, or, when it binds all interfaces, the local
// address of the route towards PD.
func advertisedAddr(bound, configured, pdURL string) (string, error) {
	host, port, err := net.SplitHostPort(configured)
	if err != nil {
		return "", fmt.Errorf("centra: addr %q: %w", configured, err)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return configured, nil
	}
	if _, p, err := net.SplitHostPort(bound); err == nil {
		port = p
	}
	target := strings.TrimPrefix(strings.TrimPrefix(pdURL, "http://"), "https://")
	conn, err := net.Dial("udp", target)
	if err != nil {
		return "", fmt.Errorf("centra: addr %q binds every interface and the route to PD %s is unknown (%v); set addr to this store's address", configured, target, err)
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.UDPAddr).IP.String()
	return net.JoinHostPort(local, port), nil
}

// httpClient returns the client this node uses to call other nodes' APIs,
// with the node's certificate when TLS is on; one for the process.
func (a *App) httpClient() (*http.Client, error) { return a.httpClientOnce() }

func (a *App) buildHTTPClient() (*http.Client, error) {
	tc, err := a.clientTLS()
	if err != nil {
		return nil, err
	}
	return centratls.HTTPClient(tc, 5*time.Second), nil
}

// defaultMaxReplicas is PD's max-replicas until an operator sets one: 1 for
// a single-member cluster whose only node is also a store (the zero-config
// dev mode, a complete cluster in one process), TiKV's 3 otherwise.
func (a *App) defaultMaxReplicas() uint64 {
	members, err := a.cfg.BootstrapMembers()
	if err == nil && len(members) == 1 && a.cfg.HasRole(config.RoleStore) {
		return 1
	}
	return 0
}
