package tls

import (
	stdtls "crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Reloader serves a certificate and key pair from files and re-reads them
// when either file's modification time or size changes, so certificates
// rotate without a restart. It checks the files on every handshake (one
// stat each). When a changed pair fails to load, for instance while only
// one of the two files has been replaced, it logs the error, keeps serving
// the previous certificate and tries again on the next change.
//
// A Reloader is safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	logger            *slog.Logger

	mu    sync.Mutex
	cert  *stdtls.Certificate
	stamp [2]fileStamp // of the files when last loaded or tried; zero after a failed stat
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	mod  time.Time
	size int64
}

// NewReloader loads certFile and keyFile and returns a Reloader serving
// them. Reload failures are logged to logger (slog.Default() when nil).
func NewReloader(certFile, keyFile string, logger *slog.Logger) (*Reloader, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("%w: cert_file and key_file must both be set (got %q and %q)", ErrNotConfigured, certFile, keyFile)
	}
	if logger == nil {
		logger = slog.Default()
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, logger: logger.With("component", "tls")}
	stamp, err := r.stat()
	if err != nil {
		return nil, err
	}
	if r.cert, err = r.load(); err != nil {
		return nil, err
	}
	r.stamp = stamp
	return r, nil
}

func (r *Reloader) stat() ([2]fileStamp, error) {
	var s [2]fileStamp
	for i, path := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(path)
		if err != nil {
			return s, &CertError{File: path, Err: ErrInvalidCert,
				Reason: fmt.Sprintf("cannot stat %s: %v; check the path and permissions", path, err)}
		}
		s[i] = fileStamp{mod: st.ModTime(), size: st.Size()}
	}
	return s, nil
}

func (r *Reloader) load() (*stdtls.Certificate, error) {
	cert, err := stdtls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, &CertError{File: r.certFile, Err: ErrInvalidCert,
			Reason: fmt.Sprintf("cannot load certificate %s with key %s: %v; check that the key belongs to the certificate", r.certFile, r.keyFile, err)}
	}
	return &cert, nil
}

// Certificate returns the current certificate, reloading it first when the
// files changed.
func (r *Reloader) Certificate() *stdtls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp, err := r.stat()
	switch {
	case err != nil:
		if r.stamp != ([2]fileStamp{}) {
			r.logger.Warn("tls: certificate files unreadable; keeping the previous certificate", "err", err)
		}
		r.stamp = [2]fileStamp{}
		return r.cert
	case stamp == r.stamp:
		return r.cert
	}
	r.stamp = stamp
	cert, err := r.load()
	if err != nil {
		r.logger.Warn("tls: certificate files changed but do not load; keeping the previous certificate", "err", err)
		return r.cert
	}
	r.logger.Info("tls: reloaded certificate " + r.certFile)
	r.cert = cert
	return r.cert
}

// GetCertificate implements stdtls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
	return r.Certificate(), nil
}

// GetClientCertificate implements stdtls.Config.GetClientCertificate.
func (r *Reloader) GetClientCertificate(*stdtls.CertificateRequestInfo) (*stdtls.Certificate, error) {
	return r.Certificate(), nil
}
