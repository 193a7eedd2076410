package tls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	stdtls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Names of the files Generate writes in its directory.
const (
	// CACertFile is the CA certificate, ca_file of every node and client.
	CACertFile = caName + ".crt"
	// CAKeyFile is the CA's private key; keep it off the nodes if you can.
	CAKeyFile = caName + ".key"
	// ClientName is the base name of the CLI's client certificate
	// (client.crt, client.key), which has only the clientAuth usage.
	ClientName = "client"
)

// caName is the base name of the CA files.
const caName = "ca"

// CAValidity is how long a CA created by Generate is valid. Node and
// client certificates never outlive their CA.
const CAValidity = 10 * 365 * 24 * time.Hour

// NodeSpec names a node certificate and the addresses it covers.
type NodeSpec struct {
	// Name is the file base name and the certificate's common name.
	Name string
	// IPs are the IP SANs.
	IPs []net.IP
	// DNSNames are the DNS SANs.
	DNSNames []string
}

var (
	validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	validDNS  = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$`)
)

// ParseNodeSpec parses "NAME=IP[,IP|DNS...]", the value of
// `centra certs init --node`, e.g. "chainfire-node-1=10.0.0.1,node1.example".
// Every entry that parses as an IP becomes an IP SAN, the others DNS SANs;
// at least one is required because peers verify the address they dial.
func ParseNodeSpec(s string) (NodeSpec, error) {
	name, list, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok {
		return NodeSpec{}, fmt.Errorf("%w: %q has no \"=\"; write NAME=IP[,IP|DNS...], e.g. node-1=10.0.0.1,node1.example", ErrInvalidNodeSpec, s)
	}
	spec := NodeSpec{Name: name}
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		switch {
		case entry == "":
		case net.ParseIP(entry) != nil:
			spec.IPs = append(spec.IPs, net.ParseIP(entry))
		case validDNS.MatchString(entry):
			spec.DNSNames = append(spec.DNSNames, entry)
		default:
			return NodeSpec{}, fmt.Errorf("%w: %q in %q is neither an IP nor a DNS name (no ports or schemes)", ErrInvalidNodeSpec, entry, s)
		}
	}
	if err := spec.validate(); err != nil {
		return NodeSpec{}, err
	}
	return spec, nil
}

func (n NodeSpec) validate() error {
	if !validName.MatchString(n.Name) {
		return fmt.Errorf("%w: name %q must start with a letter or digit and use only letters, digits, '.', '_' and '-'", ErrInvalidNodeSpec, n.Name)
	}
	if n.Name == caName || n.Name == ClientName {
		return fmt.Errorf("%w: name %q is reserved for the %s files; pick another", ErrInvalidNodeSpec, n.Name, n.Name)
	}
	if len(n.IPs) == 0 && len(n.DNSNames) == 0 {
		return fmt.Errorf("%w: node %q has no IP or DNS name; write %s=IP[,IP|DNS...]", ErrInvalidNodeSpec, n.Name, n.Name)
	}
	return nil
}

// Generate writes a CA and certificates into dir (created if needed) for
// `centra certs init`: ca.crt and ca.key, unless dir already holds both,
// in which case that CA signs the new certificates; NAME.crt and NAME.key
// for every node, with the node's IP and DNS SANs and both the serverAuth
// and clientAuth usages, valid for validity (at most until the CA
// expires); and client.crt and client.key, a clientAuth-only certificate
// for the CLI and other API clients. Keys are ECDSA P-256 in PKCS#8 PEM
// with mode 0600; certificates have mode 0644. Existing node and client
// files are replaced. It returns the paths written, in that order.
func Generate(dir string, nodes []NodeSpec, validity time.Duration) ([]string, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("tls: certificate validity %v must be positive", validity)
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if err := n.validate(); err != nil {
			return nil, err
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("%w: node %q is listed twice", ErrInvalidNodeSpec, n.Name)
		}
		seen[n.Name] = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tls: create certificate directory: %w", err)
	}

	var written []string
	ca, created, err := loadOrCreateCA(dir)
	if err != nil {
		return nil, err
	}
	if created {
		written = append(written, filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	}
	now := time.Now()
	issueTo := func(name string, tmpl *x509.Certificate) error {
		tmpl.Subject = pkix.Name{CommonName: name}
		tmpl.NotBefore = now.Add(-time.Minute) // tolerate small clock skew
		tmpl.NotAfter = now.Add(validity)
		if tmpl.NotAfter.After(ca.cert.NotAfter) {
			tmpl.NotAfter = ca.cert.NotAfter
		}
		certPEM, keyPEM, err := issue(ca, tmpl)
		if err != nil {
			return err
		}
		files, err := writePair(dir, name, certPEM, keyPEM)
		written = append(written, files...)
		return err
	}
	for _, n := range nodes {
		tmpl := &x509.Certificate{
			IPAddresses: n.IPs,
			DNSNames:    n.DNSNames,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		if err := issueTo(n.Name, tmpl); err != nil {
			return written, err
		}
	}
	client := &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if err := issueTo(ClientName, client); err != nil {
		return written, err
	}
	return written, nil
}

// authority is a CA able to sign.
type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// loadOrCreateCA reuses dir's CA or creates one; created reports which.
func loadOrCreateCA(dir string) (ca *authority, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		ca, err := loadCA(certPath, keyPath)
		return ca, false, err
	case certErr == nil || keyErr == nil:
		return nil, false, fmt.Errorf("tls: %s holds only one of %s and %s; restore the other, or remove both to create a new CA (certificates of the old CA will stop being trusted)",
			dir, CACertFile, CAKeyFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("tls: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, false, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("centra CA %x", serial.Bytes()[:4])},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, false, fmt.Errorf("tls: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, false, fmt.Errorf("tls: parse new CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, false, err
	}
	if _, err := writePair(dir, caName, encodeCert(der), keyPEM); err != nil {
		return nil, false, err
	}
	return &authority{cert: cert, key: key}, true, nil
}

func loadCA(certPath, keyPath string) (*authority, error) {
	pair, err := stdtls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, &CertError{File: keyPath, Err: ErrInvalidCert,
			Reason: fmt.Sprintf("cannot use the existing CA %s with key %s: %v; fix them or remove both to create a new CA", certPath, keyPath, err)}
	}
	cert := pair.Leaf
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || !cert.IsCA {
		return nil, &CertError{File: certPath, Err: ErrInvalidCert,
			Reason: fmt.Sprintf("existing %s is not a CA certificate; remove %s and %s to create a new CA", certPath, certPath, keyPath)}
	}
	if time.Now().After(cert.NotAfter) {
		return nil, &CertError{File: certPath, Err: ErrInvalidCert,
			Reason: fmt.Sprintf("existing CA %s expired at %s; remove %s and %s to create a new CA, then reissue every certificate",
				certPath, cert.NotAfter.UTC().Format(time.RFC3339), certPath, keyPath)}
	}
	return &authority{cert: cert, key: signer}, nil
}

// issue signs tmpl (Subject, validity, SANs and ExtKeyUsage set by the
// caller) with a fresh P-256 key and returns the PEM certificate and key.
func issue(ca *authority, tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: generate key: %w", err)
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: sign certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	keyPEM, err = encodeKey(key)
	return encodeCert(der), keyPEM, err
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("tls: generate serial number: %w", err)
	}
	// Keep the first byte non-zero so the CA name suffix has 4 bytes.
	return serial.SetBit(serial, 126, 1), nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tls: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writePair writes NAME.crt (0644) and NAME.key (0600) atomically and
// returns the paths written.
func writePair(dir, name string, certPEM, keyPEM []byte) ([]string, error) {
	var written []string
	for _, f := range []struct {
		ext  string
		data []byte
		mode os.FileMode
	}{{".crt", certPEM, 0o644}, {".key", keyPEM, 0o600}} {
		path := filepath.Join(dir, name+f.ext)
		if err := writeAtomic(path, f.data, f.mode); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}

// writeAtomic writes data to path through a synced temporary file and a
// rename, so readers (and Reloader) never see a half-written file.
func writeAtomic(path string, data []byte, mode os.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("tls: write %s: %w", path, err), os.Remove(tmp.Name()))
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
