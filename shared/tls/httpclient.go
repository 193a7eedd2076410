package tls

import (
	stdtls "crypto/tls"
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
