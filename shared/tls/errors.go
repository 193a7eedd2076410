package tls

import "errors"

// Sentinel errors; check them with errors.Is.
var (
	// ErrNotConfigured reports that a file a configuration needs is not set.
	ErrNotConfigured = errors.New("tls: not configured")
	// ErrInvalidCert reports an unreadable, malformed, mismatched, expired
	// or unsuitable certificate or key.
	ErrInvalidCert = errors.New("tls: invalid certificate")
	// ErrUnknownCA reports a certificate that the configured CA did not
	// sign.
	ErrUnknownCA = errors.New("tls: certificate signed by another CA")
	// ErrInvalidNodeSpec reports a malformed `--node NAME=IP[,IP|DNS...]`.
	ErrInvalidNodeSpec = errors.New("tls: invalid node spec")
)

// CertError describes a problem with one certificate, key or CA file.
type CertError struct {
	// File is the path of the offending file.
	File string
	// Reason says what is wrong with File and how to fix it; it names File.
	Reason string
	// Err is ErrInvalidCert or ErrUnknownCA.
	Err error
}

// Error implements error.
func (e *CertError) Error() string { return "tls: " + e.Reason }

// Unwrap returns the sentinel error.
func (e *CertError) Unwrap() error { return e.Err }
