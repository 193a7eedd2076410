package tls

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

// readFile reads a PEM file, naming it and the fix in the error.
func readFile(path, what string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &CertError{File: path, Err: ErrInvalidCert,
			Reason: fmt.Sprintf("cannot read %s %s: %v; check the path and that centra's user may read it", what, path, err)}
	}
	return data, nil
}

// parseCerts decodes every CERTIFICATE block of a PEM file.
func parseCerts(path, what string, data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, &CertError{File: path, Err: ErrInvalidCert,
				Reason: fmt.Sprintf("%s %s holds a malformed certificate: %v; regenerate it with \"centra certs init\"", what, path, err)}
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, &CertError{File: path, Err: ErrInvalidCert,
			Reason: fmt.Sprintf("%s %s has no PEM CERTIFICATE block; is it the right file (not the key)?", what, path)}
	}
	return certs, nil
}

// readCerts reads and decodes a PEM certificate file.
func readCerts(path, what string) ([]*x509.Certificate, error) {
	data, err := readFile(path, what)
	if err != nil {
		return nil, err
	}
	return parseCerts(path, what, data)
}

// caPool reads a CA file into a pool, returning the CA certificates too.
func caPool(path string) (*x509.CertPool, []*x509.Certificate, error) {
	if path == "" {
		return nil, nil, fmt.Errorf("%w: ca_file is empty; set it to the ca.crt that signed the certificates", ErrNotConfigured)
	}
	cas, err := readCerts(path, "CA file")
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	return pool, cas, nil
}

// subjects lists the subjects of certs for error messages.
func subjects(certs []*x509.Certificate) string {
	names := make([]string, len(certs))
	for i, c := range certs {
		names[i] = fmt.Sprintf("%q", c.Subject.String())
	}
	return strings.Join(names, ", ")
}

// sans lists the names a certificate is valid for.
func sans(c *x509.Certificate) string {
	var names []string
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	names = append(names, c.DNSNames...)
	if len(names) == 0 {
		return "no IP or DNS names"
	}
	return strings.Join(names, ", ")
}
