package tls

import (
	stdtls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/centra-cloud/centra/config"
)

// nextProtos serves gRPC (h2) and plain HTTP on one listener.
var nextProtos = []string{"h2", "http/1.1"}

// ServerConfig returns the TLS configuration of the API listener: TLS 1.2
// or later, t's certificate (reloaded when its files change), and ALPN h2
// and http/1.1. With t.RequireClientCert, clients must present a
// certificate signed by t.CAFile; otherwise a certificate is verified if
// the client offers one (and ignored when CAFile is empty).
func ServerConfig(t config.TLS) (*stdtls.Config, error) {
	r, err := NewReloader(t.CertFile, t.KeyFile, nil)
	if err != nil {
		return nil, err
	}
	cfg := &stdtls.Config{
		MinVersion:     stdtls.VersionTLS12,
		GetCertificate: r.GetCertificate,
		NextProtos:     nextProtos,
	}
	if t.CAFile == "" {
		if t.RequireClientCert {
			return nil, fmt.Errorf("%w: require_client_cert needs ca_file to verify clients against", ErrNotConfigured)
		}
		return cfg, nil
	}
	pool, _, err := caPool(t.CAFile)
	if err != nil {
		return nil, err
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = stdtls.VerifyClientCertIfGiven
	if t.RequireClientCert {
		cfg.ClientAuth = stdtls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientConfig returns the TLS configuration for dialing a centra node:
// TLS 1.2 or later, ALPN h2 and http/1.1, the server verified against
// t.CAFile (required) for serverName (an IP or DNS name; when empty, the
// host the caller dials, as crypto/tls fills in ServerName). t.CertFile and
// t.KeyFile are optional; when set, they are presented as the client
// certificate and reloaded when they change.
//
// With a serverName the server is verified by VerifyConnection rather than
// by crypto/tls itself (hence InsecureSkipVerify), with the same checks, so
// that a certificate from another CA fails with an ErrUnknownCA error naming
// t.CAFile instead of "certificate signed by unknown authority". Without one
// (clients of several hosts), crypto/tls verifies: the connection state does
// not carry the dialed host for IP addresses, so VerifyConnection could not.
func ClientConfig(t config.TLS, serverName string) (*stdtls.Config, error) {
	pool, cas, err := caPool(t.CAFile)
	if err != nil {
		return nil, err
	}
	cfg := &stdtls.Config{
		MinVersion: stdtls.VersionTLS12,
		NextProtos: nextProtos,
		RootCAs:    pool,
	}
	if serverName != "" {
		cfg.ServerName = serverName
		cfg.InsecureSkipVerify = true // VerifyConnection verifies; see above.
		cfg.VerifyConnection = func(cs stdtls.ConnectionState) error {
			return verifyServer(cs, serverName, pool, t.CAFile, cas)
		}
	}
	// Without a server name, crypto/tls verifies against the host each
	// connection dials (net/http sets it per request, IP addresses
	// included): its errors do not name the CA file, but the CA pool is the
	// same.
	if t.CertFile != "" || t.KeyFile != "" {
		r, err := NewReloader(t.CertFile, t.KeyFile, nil)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = r.GetClientCertificate
	}
	return cfg, nil
}

// verifyServer does what crypto/tls does to verify a server certificate,
// with errors that name the CA file and the fix.
func verifyServer(cs stdtls.ConnectionState, serverName string, pool *x509.CertPool, caFile string, cas []*x509.Certificate) error {
	if serverName == "" {
		serverName = cs.ServerName
	}
	if serverName == "" {
		return fmt.Errorf("%w: no server name to verify the certificate against; pass the host being dialed", ErrNotConfigured)
	}
	if len(cs.PeerCertificates) == 0 {
		return &CertError{File: caFile, Err: ErrInvalidCert, Reason: fmt.Sprintf("server %s presented no certificate", serverName)}
	}
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{
		Roots:         pool,
		DNSName:       serverName,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := leaf.Verify(opts)
	if err == nil {
		return nil
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	reason := fmt.Sprintf("server %s certificate %q", serverName, leaf.Subject.String())
	switch {
	case errors.As(err, &unknown):
		return &CertError{File: caFile, Err: ErrUnknownCA, Reason: fmt.Sprintf(
			"%s was issued by %q, not by the CA in %s (%s); give every node and client the same ca.crt",
			reason, leaf.Issuer.String(), caFile, subjects(cas))}
	case errors.As(err, &hostname):
		return &CertError{File: caFile, Err: ErrInvalidCert, Reason: fmt.Sprintf(
			"%s is valid for %s, not %s; regenerate it with \"centra certs init --node NAME=%s\"",
			reason, sans(leaf), serverName, serverName)}
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return &CertError{File: caFile, Err: ErrInvalidCert, Reason: fmt.Sprintf(
			"%s is not valid now (valid %s to %s); regenerate it with \"centra certs init\"",
			reason, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))}
	default:
		return &CertError{File: caFile, Err: ErrInvalidCert, Reason: fmt.Sprintf(
			"%s does not verify against the CA in %s: %v", reason, caFile, err)}
	}
}
