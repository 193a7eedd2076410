package tls

import (
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/centra-cloud/centra/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// certDir generates a CA, a node "node-1" for 127.0.0.1 and localhost, and
// the client certificate in a temporary directory.
func certDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	spec, err := ParseNodeSpec("node-1=127.0.0.1,localhost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir, []NodeSpec{spec}, 24*time.Hour); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return dir
}

func nodeTLS(dir, name string, require bool) config.TLS {
	return config.TLS{
		CertFile:          filepath.Join(dir, name+".crt"),
		KeyFile:           filepath.Join(dir, name+".key"),
		CAFile:            filepath.Join(dir, CACertFile),
		RequireClientCert: require,
	}
}

type handshakeResult struct {
	serverErr, clientErr error
	server, client       stdtls.ConnectionState
}

// handshake runs a TLS handshake over loopback TCP and exchanges one
// message, so TLS 1.3 client-certificate rejections (which the client only
// sees on its first read) surface in clientErr.
func handshake(t *testing.T, serverCfg, clientCfg *stdtls.Config) handshakeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	var res handshakeResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			res.serverErr = err
			return
		}
		defer conn.Close()
		tc := stdtls.Server(conn, serverCfg)
		if res.serverErr = tc.HandshakeContext(ctx); res.serverErr == nil {
			res.server = tc.ConnectionState()
			_, res.serverErr = tc.Write([]byte("ok"))
		}
	}()
	d := stdtls.Dialer{Config: clientCfg}
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err == nil {
		tc := conn.(*stdtls.Conn)
		res.client = tc.ConnectionState()
		_, err = io.ReadFull(conn, make([]byte, 2))
		conn.Close()
	}
	res.clientErr = err
	<-done
	return res
}

func TestMutualTLS(t *testing.T) {
	dir := certDir(t)
	srv, err := ServerConfig(nodeTLS(dir, "node-1", true))
	if err != nil {
		t.Fatal(err)
	}
	for _, client := range []string{"node-1", ClientName} {
		cli, err := ClientConfig(nodeTLS(dir, client, false), "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		res := handshake(t, srv, cli)
		if res.serverErr != nil || res.clientErr != nil {
			t.Fatalf("%s: handshake: server %v, client %v", client, res.serverErr, res.clientErr)
		}
		if got := res.server.PeerCertificates[0].Subject.CommonName; got != client {
			t.Errorf("server saw client %q, want %q", got, client)
		}
		if res.client.NegotiatedProtocol != "h2" {
			t.Errorf("ALPN = %q, want h2", res.client.NegotiatedProtocol)
		}
		if res.client.Version < stdtls.VersionTLS12 {
			t.Errorf("TLS version %x < 1.2", res.client.Version)
		}
	}
}

func TestClientWithoutCert(t *testing.T) {
	dir := certDir(t)
	noCert := config.TLS{CAFile: filepath.Join(dir, CACertFile)}
	cli, err := ClientConfig(noCert, "localhost")
	if err != nil {
		t.Fatal(err)
	}

	srv, err := ServerConfig(nodeTLS(dir, "node-1", true))
	if err != nil {
		t.Fatal(err)
	}
	res := handshake(t, srv, cli)
	if res.serverErr == nil || !strings.Contains(res.serverErr.Error(), "client didn't provide a certificate") {
		t.Errorf("server error = %v, want a missing client certificate", res.serverErr)
	}
	if res.clientErr == nil {
		t.Error("client without certificate was accepted by a server requiring one")
	}

	// Without require_client_cert, a client without certificate is fine.
	srv, err = ServerConfig(nodeTLS(dir, "node-1", false))
	if err != nil {
		t.Fatal(err)
	}
	if srv.ClientAuth != stdtls.VerifyClientCertIfGiven {
		t.Errorf("ClientAuth = %v, want VerifyClientCertIfGiven", srv.ClientAuth)
	}
	if res := handshake(t, srv, cli); res.serverErr != nil || res.clientErr != nil {
		t.Errorf("handshake without client cert: server %v, client %v", res.serverErr, res.clientErr)
	}
}

func TestWrongCA(t *testing.T) {
	dir, other := certDir(t), certDir(t)
	srv, err := ServerConfig(nodeTLS(dir, "node-1", true))
	if err != nil {
		t.Fatal(err)
	}
	// The client trusts another CA: it refuses the server, naming its CA.
	cli, err := ClientConfig(nodeTLS(other, ClientName, false), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	res := handshake(t, srv, cli)
	otherCA := filepath.Join(other, CACertFile)
	if !errors.Is(res.clientErr, ErrUnknownCA) || !strings.Contains(res.clientErr.Error(), otherCA) {
		t.Errorf("client error = %v, want ErrUnknownCA naming %s", res.clientErr, otherCA)
	}
	if res.serverErr == nil {
		t.Error("server completed a handshake the client refused")
	}

	// The server trusts another CA: it refuses the client certificate.
	cli, err = ClientConfig(config.TLS{
		CertFile: filepath.Join(other, "client.crt"),
		KeyFile:  filepath.Join(other, "client.key"),
		CAFile:   filepath.Join(dir, CACertFile),
	}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	res = handshake(t, srv, cli)
	if res.serverErr == nil || !strings.Contains(res.serverErr.Error(), "unknown authority") {
		t.Errorf("server error = %v, want an unknown authority", res.serverErr)
	}
	if res.clientErr == nil {
		t.Error("client from another CA was accepted")
	}
}

func TestServerNameMismatch(t *testing.T) {
	dir := certDir(t)
	srv, err := ServerConfig(nodeTLS(dir, "node-1", false))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ClientConfig(nodeTLS(dir, ClientName, false), "10.9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	res := handshake(t, srv, cli)
	if !errors.Is(res.clientErr, ErrInvalidCert) || !strings.Contains(res.clientErr.Error(), "valid for 127.0.0.1, localhost, not 10.9.9.9") {
		t.Errorf("client error = %v, want a SAN mismatch", res.clientErr)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := certDir(t)
	if _, err := ServerConfig(config.TLS{}); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("ServerConfig(empty) = %v, want ErrNotConfigured", err)
	}
	if _, err := ServerConfig(config.TLS{CertFile: filepath.Join(dir, "node-1.crt"), KeyFile: filepath.Join(dir, "node-1.key"), RequireClientCert: true}); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("ServerConfig(require without CA) = %v, want ErrNotConfigured", err)
	}
	if _, err := ClientConfig(config.TLS{}, "x"); !errors.Is(err, ErrNotConfigured) || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("ClientConfig(no CA) = %v, want ErrNotConfigured naming ca_file", err)
	}
	bad := nodeTLS(dir, "node-1", false)
	bad.CAFile = bad.KeyFile
	if _, err := ClientConfig(bad, "x"); !errors.Is(err, ErrInvalidCert) || !strings.Contains(err.Error(), "no PEM CERTIFICATE") {
		t.Errorf("ClientConfig(key as CA) = %v, want ErrInvalidCert", err)
	}
	mismatched := nodeTLS(dir, "node-1", false)
	mismatched.KeyFile = filepath.Join(dir, "client.key")
	if _, err := ServerConfig(mismatched); !errors.Is(err, ErrInvalidCert) || !strings.Contains(err.Error(), mismatched.KeyFile) {
		t.Errorf("ServerConfig(mismatched key) = %v, want ErrInvalidCert naming the key", err)
	}
}

// reissue signs a certificate for name with the CA in dir, applying edit
// to the template, and writes it over NAME.crt and NAME.key.
func reissue(t *testing.T, dir, name string, edit func(c *x509.Certificate)) {
	t.Helper()
	ca, err := loadCA(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	edit(tmpl)
	certPEM, keyPEM, err := issue(ca, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writePair(dir, name, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
}

func TestCheckPeerFiles(t *testing.T) {
	dir := certDir(t)
	good := nodeTLS(dir, "node-1", true)
	for _, host := range []string{"127.0.0.1", "localhost", "", "0.0.0.0", "::"} {
		if err := CheckPeerFiles(good, host); err != nil {
			t.Errorf("CheckPeerFiles(%q): %v", host, err)
		}
	}

	crt := good.CertFile
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) config.TLS
		host  string
		is    error
		want  []string
	}{
		{"expired", func(t *testing.T, d string) config.TLS {
			reissue(t, d, "old", func(c *x509.Certificate) {
				c.NotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
				c.NotAfter = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			})
			return nodeTLS(d, "old", true)
		}, "127.0.0.1", ErrInvalidCert, []string{`old.crt expired at 2026-01-01T00:00:00Z; regenerate it with "centra certs init"`}},
		{"not yet valid", func(t *testing.T, d string) config.TLS {
			reissue(t, d, "future", func(c *x509.Certificate) {
				c.NotBefore = time.Now().Add(24 * time.Hour)
				c.NotAfter = time.Now().Add(48 * time.Hour)
			})
			return nodeTLS(d, "future", true)
		}, "127.0.0.1", ErrInvalidCert, []string{"future.crt is not valid until"}},
		{"bad SAN", func(*testing.T, string) config.TLS { return good }, "10.0.0.7", ErrInvalidCert,
			[]string{crt + " is valid for 127.0.0.1, localhost, not the raft host 10.0.0.7; regenerate it with \"centra certs init --node NAME=10.0.0.7\""}},
		{"missing EKU", func(*testing.T, string) config.TLS { return nodeTLS(dir, ClientName, true) }, "", ErrInvalidCert,
			[]string{"client.crt lacks the serverAuth extended key usage"}},
		{"key mismatch", func(*testing.T, string) config.TLS {
			c := good
			c.KeyFile = filepath.Join(dir, "client.key")
			return c
		}, "127.0.0.1", ErrInvalidCert, []string{"client.key does not belong to certificate " + crt}},
		{"other CA", func(*testing.T, string) config.TLS {
			c := good
			c.CAFile = filepath.Join(certDir(t), CACertFile)
			return c
		}, "127.0.0.1", ErrUnknownCA, []string{crt + ` was issued by "CN=centra CA`}},
		{"missing file", func(_ *testing.T, d string) config.TLS {
			c := good
			c.CertFile = filepath.Join(d, "nope.crt")
			return c
		}, "127.0.0.1", ErrInvalidCert, []string{"nope.crt: no such file"}},
		{"empty", func(*testing.T, string) config.TLS { return config.TLS{CertFile: crt} }, "", ErrNotConfigured,
			[]string{"key_file is empty", "ca_file is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			for _, f := range []string{CACertFile, CAKeyFile} {
				data, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, f), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckPeerFiles(tt.setup(t, d), tt.host)
			if !errors.Is(err, tt.is) {
				t.Fatalf("CheckPeerFiles = %v, want %v", err, tt.is)
			}
			if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != len(tt.want) {
				t.Errorf("CheckPeerFiles reported %d problems, want %d:\n%v", n, len(tt.want), err)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestReloader(t *testing.T) {
	dir := certDir(t)
	cfg := nodeTLS(dir, "node-1", false)
	r, err := NewReloader(cfg.CertFile, cfg.KeyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := r.Certificate()
	if r.Certificate() != first {
		t.Fatal("unchanged files were reloaded")
	}

	// A half-done rotation (new key, old certificate) keeps the old pair.
	reissue(t, dir, "next", func(*x509.Certificate) {})
	key, err := os.ReadFile(filepath.Join(dir, "next.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(cfg.KeyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if r.Certificate() != first {
		t.Fatal("a mismatched key replaced the certificate")
	}
	// Completing it switches to the new pair.
	crt, err := os.ReadFile(filepath.Join(dir, "next.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(cfg.CertFile, crt, 0o644); err != nil {
		t.Fatal(err)
	}
	// Make sure the modification time differs even on coarse clocks.
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(cfg.CertFile, future, future); err != nil {
		t.Fatal(err)
	}
	got := r.Certificate()
	if got == first || got.Leaf.Subject.CommonName != "next" {
		t.Fatalf("after rotation got %q, want the next certificate", got.Leaf.Subject.CommonName)
	}

	// The server configuration serves the rotated certificate.
	srv, err := ServerConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ClientConfig(config.TLS{CAFile: cfg.CAFile}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	res := handshake(t, srv, cli)
	if res.clientErr != nil || res.client.PeerCertificates[0].Subject.CommonName != "next" {
		t.Errorf("handshake after rotation: %v, %+v", res.clientErr, res.client.PeerCertificates)
	}
}

func TestGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	a, err := ParseNodeSpec("chainfire-node-1=10.0.0.1,node1.example")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseNodeSpec("chainfire-node-2=10.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	files, err := Generate(dir, []NodeSpec{a, b}, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ca.crt", "ca.key", "chainfire-node-1.crt", "chainfire-node-1.key", "chainfire-node-2.crt", "chainfire-node-2.key", "client.crt", "client.key"}
	if len(files) != len(want) {
		t.Fatalf("Generate wrote %q, want %q", files, want)
	}
	for i, f := range files {
		if f != filepath.Join(dir, want[i]) {
			t.Errorf("file %d = %s, want %s", i, f, want[i])
		}
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if wantMode := os.FileMode(0o644); strings.HasSuffix(f, ".key") && st.Mode().Perm() != 0o600 || strings.HasSuffix(f, ".crt") && st.Mode().Perm() != wantMode {
			t.Errorf("%s mode = %v", f, st.Mode().Perm())
		}
	}

	node := nodeTLS(dir, "chainfire-node-1", true)
	for _, host := range []string{"10.0.0.1", "node1.example"} {
		if err := CheckPeerFiles(node, host); err != nil {
			t.Errorf("CheckPeerFiles(node-1, %s): %v", host, err)
		}
	}
	certs, err := readCerts(node.CertFile, "certificate")
	if err != nil {
		t.Fatal(err)
	}
	leaf := certs[0]
	if leaf.Subject.CommonName != "chainfire-node-1" || time.Until(leaf.NotAfter) > 91*24*time.Hour || time.Until(leaf.NotAfter) < 89*24*time.Hour {
		t.Errorf("node certificate %q valid until %v", leaf.Subject, leaf.NotAfter)
	}
	client, err := readCerts(filepath.Join(dir, "client.crt"), "certificate")
	if err != nil {
		t.Fatal(err)
	}
	if eku := client[0].ExtKeyUsage; len(eku) != 1 || eku[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("client EKU = %v, want clientAuth only", eku)
	}

	// A second run reuses the CA: old and new certificates share it.
	caBefore, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseNodeSpec("chainfire-node-4=10.0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	files, err = Generate(dir, []NodeSpec{c}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 || filepath.Base(files[0]) != "chainfire-node-4.crt" {
		t.Errorf("second Generate wrote %q, want node-4 and client files only", files)
	}
	caAfter, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil || string(caAfter) != string(caBefore) {
		t.Errorf("CA changed on the second run (%v)", err)
	}
	if err := CheckPeerFiles(nodeTLS(dir, "chainfire-node-4", true), "10.0.0.4"); err != nil {
		t.Errorf("CheckPeerFiles(node-4): %v", err)
	}
	if err := CheckPeerFiles(node, "10.0.0.1"); err != nil {
		t.Errorf("node-1 after the second run: %v", err)
	}

	// Half a CA is refused rather than silently replaced.
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir, nil, time.Hour); err == nil || !strings.Contains(err.Error(), "only one of ca.crt and ca.key") {
		t.Errorf("Generate with ca.crt only = %v", err)
	}
	if _, err := Generate(t.TempDir(), []NodeSpec{a, a}, time.Hour); !errors.Is(err, ErrInvalidNodeSpec) {
		t.Errorf("Generate with a duplicate node = %v, want ErrInvalidNodeSpec", err)
	}
	if _, err := Generate(t.TempDir(), nil, 0); err == nil {
		t.Error("Generate with zero validity succeeded")
	}
}

func TestParseNodeSpec(t *testing.T) {
	spec, err := ParseNodeSpec("n1=10.0.0.1, fd00::1 ,n1.example,*.svc.local")
	if err != nil {
		t.Fatal(err)
	}
	if spec.Name != "n1" || len(spec.IPs) != 2 || !spec.IPs[1].Equal(net.ParseIP("fd00::1")) ||
		strings.Join(spec.DNSNames, " ") != "n1.example *.svc.local" {
		t.Errorf("ParseNodeSpec = %+v", spec)
	}
	for _, bad := range []struct{ in, want string }{
		{"n1", `has no "="`},
		{"n1=", "has no IP or DNS name"},
		{"=10.0.0.1", `name ""`},
		{"../x=10.0.0.1", `name "../x"`},
		{"ca=10.0.0.1", "reserved"},
		{"client=10.0.0.1", "reserved"},
		{"n1=10.0.0.1:2380", "neither an IP nor a DNS name"},
		{"n1=http://x", "neither an IP nor a DNS name"},
	} {
		_, err := ParseNodeSpec(bad.in)
		if !errors.Is(err, ErrInvalidNodeSpec) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseNodeSpec(%q) = %v, want ErrInvalidNodeSpec with %q", bad.in, err, bad.want)
		}
	}
}
