package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	centratls "github.com/centra-cloud/centra/shared/tls"
)

// clientFlags are the connection flags shared by client commands.
func clientFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "endpoint", Aliases: []string{"endpoints"}, Value: "127.0.0.1:2379", Usage: "comma-separated API endpoints (http://, https:// or host:port); any member works", EnvVars: []string{"CENTRA_ENDPOINT", "ETCDCTL_ENDPOINTS"}},
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "timeout of each request"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "simple", Usage: "output format: simple or json"},
	}, tlsFlags()...)
}

// conn is a client connection to a list of endpoints.
type conn struct {
	urls    []string
	http    *http.Client
	tls     *clientTLS
	timeout time.Duration
	json    bool
}

func newConn(c *cli.Context) (*conn, error) {
	out := c.String("output")
	if out != "simple" && out != "json" {
		return nil, exitf("--output %q: want simple or json", out)
	}
	t, err := newClientTLS(c)
	if err != nil {
		return nil, err
	}
	tlsCfg := t.cfg
	var urls []string
	for _, ep := range strings.Split(c.String("endpoint"), ",") {
		ep = strings.TrimSpace(ep)
		if ep == "" {
			continue
		}
		ep = t.endpointURL(ep)
		if strings.HasPrefix(ep, "https://") && tlsCfg == nil {
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		urls = append(urls, strings.TrimSuffix(ep, "/"))
	}
	if len(urls) == 0 {
		return nil, exitf("--endpoint: no endpoint given")
	}
	return &conn{urls: urls, http: centratls.HTTPClient(tlsCfg, 3*time.Second), tls: t, timeout: c.Duration("timeout"), json: out == "json"}, nil
}

// retryable reports whether another endpoint may succeed where this one
// failed: it is unreachable or has no leader.
func retryable(err error) bool {
	return connect.CodeOf(err) == connect.CodeUnavailable
}

// each calls fn with each endpoint in turn until one does not fail with an
// unavailable error. Writes sent to any member reach the leader.
func (cn *conn) each(ctx context.Context, fn func(ctx context.Context, url string) error) error {
	var errs []error
	for _, url := range cn.urls {
		cctx, cancel := context.WithTimeout(ctx, cn.timeout)
		err := fn(cctx, url)
		cancel()
		if err == nil || !retryable(err) {
			return cn.describe(ctx, url, err)
		}
		errs = append(errs, cn.describe(ctx, url, err))
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// describe turns an RPC error into a one-line reason naming the endpoint;
// a TLS failure also says what is wrong and how to fix it.
func (cn *conn) describe(ctx context.Context, url string, err error) error {
	if err == nil {
		return nil
	}
	if hint := cn.tls.explain(ctx, url, err); hint != "" {
		return fmt.Errorf("%s: %s (%v)", url, hint, err)
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return fmt.Errorf("%s: %s", url, ce.Message())
	}
	return fmt.Errorf("%s: %w", url, err)
}

func (cn *conn) watch(url string) etcdserverpbconnect.WatchClient {
	return etcdserverpbconnect.NewWatchClient(cn.http, url, connect.WithGRPC())
}
