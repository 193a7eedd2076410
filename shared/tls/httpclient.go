package tls

import (
	stdtls "crypto/tls"
	"log"
	"net"
	"net/http"
	"time"
)

// HTTPClient returns the client centra uses to call centra APIs: HTTP/2
// only, over TLS with cfg for https:// URLs and cleartext (h2c) for http://
// URLs, because gRPC streams need HTTP/2 and every centra listener speaks
// it. Dials give up after dialTimeout.
func HTTPClient(cfg *stdtls.Config, dialTimeout time.Duration) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   cfg,
		DialContext:       (&net.Dialer{Timeout: dialTimeout}).DialContext,
		ForceAttemptHTTP2: true,
	}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP2(true)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

// NewServer returns an HTTP server for centra's APIs: HTTP/1.1 and HTTP/2,
// over TLS with cfg, or also cleartext HTTP/2 (h2c) when cfg is nil. Serve
// it on Listener(srv, ln) so that TLS is never optional once configured.
func NewServer(h http.Handler, cfg *stdtls.Config, errorLog *log.Logger) *http.Server {
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          errorLog,
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	if cfg == nil {
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	return srv
}

// Listener wraps ln in TLS when srv has a TLS configuration.
func Listener(srv *http.Server, ln net.Listener) net.Listener {
	if srv.TLSConfig == nil {
		return ln
	}
	return stdtls.NewListener(ln, srv.TLSConfig)
}
