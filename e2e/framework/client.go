//go:build e2e

package framework

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	centratls "github.com/centra-cloud/centra/shared/tls"
)

// httpClient returns a client for the node's HTTP endpoints (TLS-aware).
func (n *Node) httpClient() *http.Client {
	tr := &http.Transport{DisableKeepAlives: true}
	if n.c.tls != nil {
		tr.TLSClientConfig = n.c.tls.client.Clone()
	}
	return &http.Client{Transport: tr, Timeout: 3 * time.Second}
}

// ConnectClient returns the cluster's shared HTTP/2 client for Connect
// calls to any of its nodes and stores (in a TLS cluster with the
// framework's client certificate); its connections are closed with the
// cluster.
func (c *Cluster) ConnectClient() *http.Client {
	c.connectOnce.Do(func() { c.connect = centratls.HTTPClient(c.ClientTLS(), 5*time.Second) })
	return c.connect
}

// ConnectClient is the node's cluster's ConnectClient.
func (n *Node) ConnectClient() *http.Client { return n.c.ConnectClient() }

// Get fetches path (e.g. "/metrics") from the API listener and returns the
// status code and body.
func (n *Node) Get(ctx context.Context, path string) (int, string, error) {
	return n.Do(ctx, http.MethodGet, path, "")
}

// WaitReady polls /readyz about every 50 ms until it answers 200 (the node
// serves linearizable reads) or ctx ends. It fails fast if the process
// exits.
func (n *Node) WaitReady(ctx context.Context) error {
	var last string
	for {
		if err, ok := n.exited(); ok {
			return n.exitReason(err)
		}
		code, body, err := n.Get(ctx, "/readyz")
		if err == nil && code == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last /readyz: %s)", n, ctx.Err(), last)
		case <-time.After(pollTick):
		}
	}
}

// clientConfig returns the clientv3 config for endpoints, TLS-aware.
func (c *Cluster) clientConfig(endpoints []string) clientv3.Config {
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	}
	if c.tls != nil {
		cfg.TLS = c.tls.client.Clone()
	}
	return cfg
}

// NewClient returns a clientv3 client for the given endpoints that the
// caller must close.
func (c *Cluster) NewClient(endpoints ...string) (*clientv3.Client, error) {
	return clientv3.New(c.clientConfig(endpoints))
}

// Client returns a clientv3 client talking to this node only, closed when
// the test ends.
func (n *Node) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := n.c.NewClient(n.apiAddr)
	if err != nil {
		t.Fatalf("client for %s: %v", n, err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// Status asks the node for its Maintenance.Status through a fresh
// connection (so that a restarted node is not hidden by a reconnect
// backoff).
func (n *Node) Status(ctx context.Context) (*clientv3.StatusResponse, error) {
	cli, err := n.c.NewClient(n.apiAddr)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cli.Status(ctx, n.apiAddr)
}
