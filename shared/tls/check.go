package tls

import (
	stdtls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/centra-cloud/centra/config"
)

const regenerate = `regenerate it with "centra certs init"`

// CheckPeerFiles vets the files the raft transport will use, before
// dragonboat sees them: all three are set and readable, the key matches the
// certificate, the certificate and CA are valid now, the certificate
// chains to the CA, carries both the serverAuth and clientAuth extended key
// usages (peers dial each other and accept each other's connections), and
// covers raftHost (an IP or DNS name) with a SAN. Pass the host peers dial,
// the host of this node's advertised raft address; an empty or wildcard
// host (0.0.0.0, ::) skips the SAN check because nobody dials it.
//
// It returns every problem found, joined; each is a *CertError naming the
// file, the reason and the fix.
func CheckPeerFiles(t config.TLS, raftHost string) error {
	var missing []error
	for _, f := range []struct{ name, path string }{{"cert_file", t.CertFile}, {"key_file", t.KeyFile}, {"ca_file", t.CAFile}} {
		if f.path == "" {
			missing = append(missing, fmt.Errorf("%w: %s is empty; raft mTLS needs cert_file, key_file and ca_file", ErrNotConfigured, f.name))
		}
	}
	if len(missing) > 0 {
		return errors.Join(missing...)
	}
	certPEM, certErr := readFile(t.CertFile, "certificate")
	keyPEM, keyErr := readFile(t.KeyFile, "key")
	caPEM, caErr := readFile(t.CAFile, "CA file")
	if err := errors.Join(certErr, keyErr, caErr); err != nil {
		return err
	}
	chain, certErr := parseCerts(t.CertFile, "certificate", certPEM)
	cas, caErr := parseCerts(t.CAFile, "CA file", caPEM)
	if err := errors.Join(certErr, caErr); err != nil {
		return err
	}
	leaf := chain[0]

	var errs []error
	fail := func(file string, sentinel error, format string, args ...any) {
		errs = append(errs, &CertError{File: file, Err: sentinel, Reason: fmt.Sprintf(format, args...)})
	}
	if _, err := stdtls.X509KeyPair(certPEM, keyPEM); err != nil {
		fail(t.KeyFile, ErrInvalidCert, "key %s does not belong to certificate %s (%v); use the key generated with the certificate, or %s",
			t.KeyFile, t.CertFile, err, regenerate)
	}
	now := time.Now()
	checkValidity := func(file string, c *x509.Certificate) {
		switch {
		case now.After(c.NotAfter):
			fail(file, ErrInvalidCert, "certificate %s expired at %s; %s", file, c.NotAfter.UTC().Format(time.RFC3339), regenerate)
		case now.Before(c.NotBefore):
			fail(file, ErrInvalidCert, "certificate %s is not valid until %s; check this machine's clock or %s",
				file, c.NotBefore.UTC().Format(time.RFC3339), regenerate)
		}
	}
	checkValidity(t.CertFile, leaf)
	for _, ca := range cas {
		checkValidity(t.CAFile, ca)
	}

	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	opts := x509.VerifyOptions{
		Roots:         pool,
		Intermediates: x509.NewCertPool(),
		// Validity is reported above; check the chain at a time when the
		// certificate and the CA are valid, so problems are not reported
		// twice or hidden behind an expiry.
		CurrentTime: validTime(now, append([]*x509.Certificate{leaf}, cas...)),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(opts); err != nil {
		var (
			unknown x509.UnknownAuthorityError
			invalid x509.CertificateInvalidError
		)
		switch {
		case errors.As(err, &unknown):
			fail(t.CertFile, ErrUnknownCA, "certificate %s was issued by %q, not by the CA in %s (%s); %s from that CA, or fix ca_file",
				t.CertFile, leaf.Issuer.String(), t.CAFile, subjects(cas), regenerate)
		case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
			// The validity windows do not overlap; reported above.
		default:
			fail(t.CertFile, ErrInvalidCert, "certificate %s does not verify against the CA in %s: %v; %s", t.CertFile, t.CAFile, err, regenerate)
		}
	}

	for _, u := range []struct {
		usage x509.ExtKeyUsage
		name  string
	}{{x509.ExtKeyUsageServerAuth, "serverAuth"}, {x509.ExtKeyUsageClientAuth, "clientAuth"}} {
		if !hasUsage(leaf, u.usage) {
			fail(t.CertFile, ErrInvalidCert, "certificate %s lacks the %s extended key usage; raft peers need serverAuth and clientAuth; %s",
				t.CertFile, u.name, regenerate)
		}
	}

	if ip := net.ParseIP(raftHost); raftHost != "" && (ip == nil || !ip.IsUnspecified()) {
		if err := leaf.VerifyHostname(raftHost); err != nil {
			fail(t.CertFile, ErrInvalidCert, "certificate %s is valid for %s, not the raft host %s; regenerate it with \"centra certs init --node NAME=%s\"",
				t.CertFile, sans(leaf), raftHost, raftHost)
		}
	}
	return errors.Join(errs...)
}

// validTime returns now moved into the window in which all certs are
// valid, or now when there is no such window.
func validTime(now time.Time, certs []*x509.Certificate) time.Time {
	lo, hi := certs[0].NotBefore, certs[0].NotAfter
	for _, c := range certs[1:] {
		if c.NotBefore.After(lo) {
			lo = c.NotBefore
		}
		if c.NotAfter.Before(hi) {
			hi = c.NotAfter
		}
	}
	switch {
	case lo.After(hi):
		return now
	case now.Before(lo):
		return lo
	case now.After(hi):
		return hi
	}
	return now
}

// hasUsage reports whether c carries usage (or any usage).
func hasUsage(c *x509.Certificate, usage x509.ExtKeyUsage) bool {
	return slices.Contains(c.ExtKeyUsage, usage) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
}
