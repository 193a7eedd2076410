//go:build e2e

package framework

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tlsFiles are the certificate files of a TLS cluster.
type tlsFiles struct {
	dir                   string
	caFile                string
	clientCert, clientKey string
	client                *tls.Config // CA + client certificate
}

// makeCerts runs `centra certs init` for every node and loads the client
// certificate.
func (c *Cluster) makeCerts() error {
	dir := filepath.Join(c.base, "certs")
	args := []string{"certs", "init", "--dir", dir}
	for i := range c.opts.nodes {
		args = append(args, "--node", fmt.Sprintf("node%d=%s", i+1, c.certAddrs(i)))
	}
	if r := RunCLI(args...); r.Err != nil {
		return fmt.Errorf("centra %s: %s", strings.Join(args, " "), r)
	}
	f := &tlsFiles{
		dir:        dir,
		caFile:     filepath.Join(dir, "ca.crt"),
		clientCert: filepath.Join(dir, "client.crt"),
		clientKey:  filepath.Join(dir, "client.key"),
	}
	pool, err := loadCA(f.caFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(f.clientCert, f.clientKey)
	if err != nil {
		return err
	}
	// Every certificate holds 127.0.0.1, which clients verify whatever
	// address they dial (WithNetns: the namespace's).
	f.client = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1"}
	c.tls = f
	return nil
}

// certAddrs is the addresses of the certificate of node (or, past the
// nodes, store) i: 127.0.0.1 and, WithNetns, the address in its namespace,
// which its peers dial and verify.
func (c *Cluster) certAddrs(i int) string {
	if c.opts.netns == nil {
		return "127.0.0.1"
	}
	_, host := c.opts.netns(i)
	return "127.0.0.1," + host
}

func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, nil
}

// TLSFlags returns the centra CLI flags for this cluster's client
// certificate (--cacert, --cert, --key), or nil without TLS. The CLI wants
// flags before positional arguments, so put them right after the command
// words.
func (c *Cluster) TLSFlags() []string {
	if c.tls == nil {
		return nil
	}
	return []string{"--cacert", c.tls.caFile, "--cert", c.tls.clientCert, "--key", c.tls.clientKey}
}

// TLSEnv returns the environment that gives a client this cluster's CA and
// client certificate: PREFIX_CACERT, PREFIX_CERT and PREFIX_KEY (prefix
// "CENTRA" or "ETCDCTL"); nil without TLS.
func (c *Cluster) TLSEnv(prefix string) []string {
	if c.tls == nil {
		return nil
	}
	return []string{prefix + "_CACERT=" + c.tls.caFile, prefix + "_CERT=" + c.tls.clientCert, prefix + "_KEY=" + c.tls.clientKey}
}

// CAFile returns the CA certificate of a TLS cluster ("" without TLS).
func (c *Cluster) CAFile() string {
	if c.tls == nil {
		return ""
	}
	return c.tls.caFile
}

// ClientTLS returns a copy of the TLS config the framework's clients use
// (CA and client certificate), or nil without TLS.
func (c *Cluster) ClientTLS() *tls.Config {
	if c.tls == nil {
		return nil
	}
	return c.tls.client.Clone()
}
