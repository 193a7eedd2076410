package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/centra-cloud/centra/config"
	centratls "github.com/centra-cloud/centra/shared/tls"
)

// tlsFlags are the client's TLS flags. Each also reads centra's variable
// and etcdctl's, so the runbooks' command lines work unchanged on a TLS
// cluster once the environment names the files.
func tlsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cacert", Usage: "CA certificate that signed the servers' certificates (enables TLS; http:// endpoints then use TLS too)", EnvVars: []string{"CENTRA_CACERT", "ETCDCTL_CACERT"}},
		&cli.StringFlag{Name: "cert", Usage: "client certificate, for servers with require_client_cert", EnvVars: []string{"CENTRA_CERT", "ETCDCTL_CERT"}},
		&cli.StringFlag{Name: "key", Usage: "client private key", EnvVars: []string{"CENTRA_KEY", "ETCDCTL_KEY"}},
	}
}

// clientTLS is the client's TLS setup: nil config without TLS material.
type clientTLS struct {
	cfg                   *tls.Config
	caFile, certFile, key string
}

// newClientTLS builds the client TLS configuration from the flags (or
// their environment variables). A client certificate that is not valid
// now fails here, before any server is asked.
func newClientTLS(c *cli.Context) (*clientTLS, error) {
	t := &clientTLS{caFile: flagOrEnv(c, "cacert"), certFile: flagOrEnv(c, "cert"), key: flagOrEnv(c, "key")}
	if t.caFile == "" && t.certFile == "" && t.key == "" {
		return t, nil
	}
	if t.certFile != "" {
		if err := checkClientCert(t.certFile, time.Now()); err != nil {
			return nil, err
		}
	}
	var err error
	t.cfg, err = centratls.ClientConfig(config.TLS{CAFile: t.caFile, CertFile: t.certFile, KeyFile: t.key}, "")
	if err != nil {
		return nil, fmt.Errorf("client TLS (--cacert/--cert/--key or CENTRA_CACERT/CENTRA_CERT/CENTRA_KEY): %w", err)
	}
	return t, nil
}

// flagOrEnv is the value of one of tlsFlags: the flag, else the first
// non-empty one of its environment variables (an empty CENTRA_CACERT does
// not hide ETCDCTL_CACERT).
func flagOrEnv(c *cli.Context, name string) string {
	if v := c.String(name); v != "" {
		return v
	}
	for _, f := range tlsFlags() {
		if sf := f.(*cli.StringFlag); sf.Name == name {
			for _, env := range sf.EnvVars {
				if v := os.Getenv(env); v != "" {
					return v
				}
			}
		}
	}
	return ""
}

// checkClientCert refuses a client certificate that is not valid at now.
func checkClientCert(path string, now time.Time) error {
	cert, err := readCert(path)
	if err != nil {
		return err
	}
	if now.After(cert.NotAfter) || now.Before(cert.NotBefore) {
		return fmt.Errorf("client certificate %s (%s) is valid from %s to %s, not now; issue a new one (centra certs init)",
			path, cert.Subject, cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("client certificate %s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

// endpointURL turns an --endpoint value into the URL to call: host:port
// gets https:// with TLS material, http:// without; an http:// endpoint
// uses TLS too when TLS material is configured (the runbooks write
// http://NODE:2379 everywhere).
func (t *clientTLS) endpointURL(ep string) string {
	switch {
	case strings.HasPrefix(ep, "https://"):
		return ep
	case strings.HasPrefix(ep, "http://"):
		if t.cfg != nil {
			return "https://" + strings.TrimPrefix(ep, "http://")
		}
		return ep
	case t.cfg != nil:
		return "https://" + ep
	default:
		return "http://" + ep
	}
}

// explain says what is wrong when a call to rawURL failed because of TLS
// (or its absence), with the fix; "" when err is not about TLS.
func (t *clientTLS) explain(ctx context.Context, rawURL string, err error) string {
	msg := err.Error()
	if t.cfg != nil && strings.HasPrefix(rawURL, "https://") && !strings.Contains(msg, "tls:") && !strings.Contains(msg, "x509:") {
		// With TLS 1.3 the server rejects a client certificate after the
		// client finished its handshake, and HTTP/2 reports only that the
		// connection failed: ask again to hear the server's alert.
		msg += " " + t.serverAlert(ctx, rawURL)
	}
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown), strings.Contains(msg, "certificate signed by unknown authority"):
		return fmt.Sprintf("the server's certificate is not signed by the CA in %s; pass the cluster's CA with --cacert (or CENTRA_CACERT)", t.caFile)
	case errors.As(err, &hostname):
		return fmt.Sprintf("the server's certificate does not name the host dialled: %v; use the address its certificate was issued for", hostname.Error())
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the server's certificate has expired (or is not valid yet); renew it on the server (centra certs init)"
	case strings.Contains(msg, "certificate required"):
		return "the server requires a client certificate: pass --cert and --key (or CENTRA_CERT and CENTRA_KEY) issued by the cluster's CA"
	case strings.Contains(msg, "remote error: tls: bad certificate"), strings.Contains(msg, "remote error: tls: unknown certificate authority"),
		strings.Contains(msg, "remote error: tls: expired certificate"):
		return fmt.Sprintf("the server rejected the client certificate %s: it is not issued by the server's CA (or has expired); use a client certificate from the cluster's CA (centra certs init)", t.certFile)
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"), strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "the server does not speak TLS; use http:// without --cacert (unset CENTRA_CACERT / ETCDCTL_CACERT)"
	case strings.HasPrefix(rawURL, "http://") && speaksTLS(ctx, rawURL):
		return "the server speaks TLS and this client does not: pass the cluster's CA with --cacert (or CENTRA_CACERT / ETCDCTL_CACERT), plus --cert and --key (CENTRA_CERT / CENTRA_KEY) when it requires client certificates"
	}
	return ""
}

// speaksTLS reports whether the server at rawURL answers a TLS handshake.
func speaksTLS(ctx context.Context, rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // only asks whether TLS is spoken
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err == nil {
		conn.Close()
		return true
	}
	// A TLS alert (e.g. "certificate required") is TLS too.
	return strings.Contains(err.Error(), "remote error: tls")
}

// serverAlert completes a TLS handshake with rawURL's server and waits
// briefly for an alert it sends afterwards (TLS 1.3 verifies the client's
// certificate then); "" if none comes.
func (t *clientTLS) serverAlert(ctx context.Context, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cfg := t.cfg.Clone()
	cfg.ServerName = u.Hostname()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil && strings.Contains(err.Error(), "remote error: tls") {
		return err.Error()
	}
	return ""
}
