//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestMutualTLS runs three nodes with [network.tls] and
// require_client_cert = true (raft between them is mTLS too): clients with
// the client certificate work, clients without one or without TLS are
// refused.
func TestMutualTLS(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3), framework.WithTLS())
	ctx := testCtx(t, 2*time.Minute)
	ep := c.Node(0).Endpoint()
	caOnly := &tls.Config{RootCAs: certPool(t, c.CAFile()), MinVersion: tls.VersionTLS12}

	t.Run("client certificate works", func(t *testing.T) {
		if _, err := c.Client(t).Put(ctx, "tls/k", "v"); err != nil {
			t.Fatalf("put with the client certificate: %v", err)
		}
		resp, err := c.Node(2).Client(t).Get(ctx, "tls/k")
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
			t.Fatalf("get on node 3: %v, %v", resp, err)
		}
	})

	t.Run("CA without client certificate is refused", func(t *testing.T) {
		// Blocking dial returning the connection error, so that clientv3
		// reports why the connection failed rather than only a deadline.
		err := clientv3Put(ctx, clientv3.Config{Endpoints: []string{ep}, TLS: caOnly,
			DialOptions: []grpc.DialOption{grpc.WithBlock(), grpc.WithReturnConnectionError()}})
		if err == nil {
			t.Fatal("put without a client certificate succeeded")
		}
		t.Logf("clientv3 without a client certificate: %v", err)
		// With TLS 1.3 the client learns of the refusal only after its
		// handshake completed, from the server's alert; gRPC writes its
		// preface at once and may see the closed connection first
		// ("broken pipe"). A bare TLS connection reads the alert.
		conn, rerr := tls.Dial("tcp", ep, caOnly)
		if rerr == nil {
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, rerr = conn.Read(make([]byte, 1))
			_ = conn.Close()
		}
		if rerr == nil || !regexp.MustCompile(`(?i)certificate|handshake`).MatchString(rerr.Error()) {
			t.Errorf("TLS connection without a client certificate: got %v, want an error about the certificate or the handshake", rerr)
		} else {
			t.Logf("bare TLS connection without a client certificate: %v", rerr)
		}
	})

	t.Run("plaintext is refused", func(t *testing.T) {
		err := clientv3Put(ctx, clientv3.Config{Endpoints: []string{ep},
			DialOptions: []grpc.DialOption{grpc.WithBlock(), grpc.WithReturnConnectionError()}})
		if err == nil {
			t.Fatal("plaintext put to the TLS port succeeded")
		}
		t.Logf("clientv3 in plaintext: %v", err)
		hc := &http.Client{Timeout: 5 * time.Second}
		resp, err := hc.Get("http://" + ep + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("plaintext GET /readyz on the TLS port answered 200")
			}
		}
	})

	t.Run("centra CLI", func(t *testing.T) {
		eps := strings.Join(c.Endpoints(), ",")
		args := append(append([]string{"kv", "put"}, c.TLSFlags()...), "--endpoint", eps, "tls/cli", "cv")
		if r := c.RunCLI(args...); r.Err != nil || r.Stdout != "OK\n" {
			t.Errorf("centra kv put with TLS flags: %s", r)
		} else {
			args = append(append([]string{"kv", "get"}, c.TLSFlags()...), "--endpoint", eps, "tls/cli")
			if r := c.RunCLI(args...); r.Err != nil || r.Stdout != "cv\n" {
				t.Errorf("centra kv get with TLS flags: %s", r)
			}
		}
		r := c.RunCLI("kv", "get", "--cacert", c.CAFile(), "--endpoint", ep, "tls/cli")
		if r.Err == nil {
			t.Fatalf("centra kv get without a client certificate succeeded: %s", r)
		}
		if lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "Error:") {
			t.Errorf("centra kv get without a client certificate: want a one-line error, got %q", r.Stderr)
		}
	})

	t.Run("etcdctl with client certificate", func(t *testing.T) {
		dir := filepath.Dir(c.CAFile())
		flags := []string{"--endpoints=https://" + ep, "--cacert=" + c.CAFile(),
			"--cert=" + filepath.Join(dir, "client.crt"), "--key=" + filepath.Join(dir, "client.key")}
		if r := framework.RunEtcdctl(t, append(flags, "put", "tls/etcdctl", "ev")...); r.Err != nil || r.Stdout != "OK\n" {
			t.Fatalf("etcdctl put over mTLS: %s", r)
		}
		if r := framework.RunEtcdctl(t, append(flags, "get", "tls/etcdctl", "--print-value-only")...); r.Err != nil || r.Stdout != "ev\n" {
			t.Fatalf("etcdctl get over mTLS: %s", r)
		}
	})

	t.Run("JSON logs", func(t *testing.T) { checkLogs(t, c) })
}

// clientv3Put makes one client with cfg, puts a key and returns the error
// of whichever step failed.
func clientv3Put(ctx context.Context, cfg clientv3.Config) error {
	cfg.DialTimeout = 2 * time.Second
	cfg.Logger = zap.NewNop()
	cli, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = cli.Put(ctx, "refused", "x")
	return err
}

func certPool(t *testing.T, caFile string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate", caFile)
	}
	return pool
}
