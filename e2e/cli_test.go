//go:build e2e

package e2e

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/centra-cloud/centra/e2e/framework"
)

// oneLineError checks the CLI's failure contract: non-zero exit, nothing on
// stdout, one "Error: ..." line on stderr.
func oneLineError(t *testing.T, what string, r framework.CmdResult) {
	t.Helper()
	if r.ExitCode() <= 0 {
		t.Errorf("%s: want a non-zero exit status, got %s", what, r)
		return
	}
	lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "Error: ") || r.Stdout != "" {
		t.Errorf("%s: want one \"Error: ...\" line on stderr and no output, got %d stderr lines:\n%s", what, len(lines), r)
	}
}

// TestCLI drives `centra kv` against a three-node cluster whose first
// endpoint is down.
func TestCLI(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	eps := strings.Join(c.Endpoints(), ",")

	t.Run("flags after arguments", func(t *testing.T) {
		// The form the docs and `centra serve`'s greeting use.
		if r := c.RunCLI("kv", "put", "after", "v", "--endpoint", eps); r.Err != nil || r.Stdout != "OK\n" {
			t.Errorf("centra kv put KEY VALUE --endpoint ...: %s", r)
		}
		if r := c.RunCLI("kv", "get", "after", "--endpoint", eps, "-o", "json"); r.Err != nil || !json.Valid([]byte(r.Stdout)) {
			t.Errorf("centra kv get KEY --endpoint ... -o json: %s", r)
		}
	})

	must(t, c.Node(0).Kill())
	c.Leader(t)

	t.Run("first endpoint down", func(t *testing.T) {
		if r := c.RunCLI("kv", "put", "--endpoint", eps, "cli/k", "v1"); r.Err != nil || r.Stdout != "OK\n" {
			t.Fatalf("put: %s", r)
		}
		if r := c.RunCLI("kv", "get", "--endpoint", eps, "cli/k"); r.Err != nil || r.Stdout != "v1\n" {
			t.Fatalf("get: want v1, got %s", r)
		}
		if r := c.RunCLI("kv", "del", "--endpoint", eps, "cli/k"); r.Err != nil || r.Stdout != "1\n" {
			t.Fatalf("del: want 1, got %s", r)
		}
		oneLineError(t, "get of a deleted key", c.RunCLI("kv", "get", "--endpoint", eps, "cli/k"))
	})

	t.Run("json output", func(t *testing.T) {
		r := c.RunCLI("kv", "put", "--endpoint", eps, "-o", "json", "cli/j", "jv")
		var put struct {
			Header struct {
				Revision string `json:"revision"`
			} `json:"header"`
		}
		if r.Err != nil || json.Unmarshal([]byte(r.Stdout), &put) != nil || put.Header.Revision == "" {
			t.Fatalf("put -o json: want JSON with header.revision, got %s", r)
		}
		r = c.RunCLI("kv", "get", "--endpoint", eps, "-o", "json", "cli/j")
		var get struct {
			Kvs []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"kvs"`
			Count string `json:"count"`
		}
		if r.Err != nil || json.Unmarshal([]byte(r.Stdout), &get) != nil || len(get.Kvs) != 1 {
			t.Fatalf("get -o json: want JSON with one kv, got %s", r)
		}
		key, _ := base64.StdEncoding.DecodeString(get.Kvs[0].Key)
		val, _ := base64.StdEncoding.DecodeString(get.Kvs[0].Value)
		if string(key) != "cli/j" || string(val) != "jv" || get.Count != "1" {
			t.Errorf("get -o json: key %q value %q count %q, want cli/j, jv, 1 (etcd's JSON: base64 bytes)", key, val, get.Count)
		}
	})

	t.Run("txn from stdin", func(t *testing.T) {
		if r := c.RunCLI("kv", "put", "--endpoint", eps, "cli/t", "1"); r.Err != nil {
			t.Fatal(r)
		}
		in := "value(\"cli/t\") = \"1\"\n\nput cli/t 2\n\nput cli/t failed\n\n"
		if r := framework.RunCLIInput(in, "kv", "txn", "--endpoint", eps); r.Err != nil || r.Stdout != "SUCCESS\n\nOK\n" {
			t.Fatalf("txn: want SUCCESS, got %s", r)
		}
		if r := framework.RunCLIInput(in, "kv", "txn", "--endpoint", eps); r.Err != nil || r.Stdout != "FAILURE\n\nOK\n" {
			t.Fatalf("second txn: want FAILURE, got %s", r)
		}
		if r := c.RunCLI("kv", "get", "--endpoint", eps, "cli/t"); r.Err != nil || r.Stdout != "failed\n" {
			t.Fatalf("get after the txns: want failed, got %s", r)
		}
	})

	t.Run("watch from a revision", func(t *testing.T) {
		r := c.RunCLI("kv", "put", "--endpoint", eps, "-o", "json", "cli/w", "a")
		var put struct {
			Header struct {
				Revision string `json:"revision"`
			} `json:"header"`
		}
		if r.Err != nil || json.Unmarshal([]byte(r.Stdout), &put) != nil {
			t.Fatal(r)
		}
		if r := c.RunCLI("kv", "put", "--endpoint", eps, "cli/w", "b"); r.Err != nil {
			t.Fatal(r)
		}
		r = c.RunCLI("kv", "watch", "--endpoint", eps, "--rev", put.Header.Revision, "--count", "2", "cli/w")
		if r.Err != nil || r.Stdout != "PUT\ncli/w\na\nPUT\ncli/w\nb\n" {
			t.Fatalf("watch --rev --count 2: %s", r)
		}
	})

	t.Run("bad endpoint", func(t *testing.T) {
		unused, err := framework.UnusedAddr()
		if err != nil {
			t.Fatal(err)
		}
		r := c.RunCLI("kv", "get", "--endpoint", unused, "cli/k")
		oneLineError(t, "get from an endpoint where nothing listens", r)
		if !strings.Contains(r.Stderr, unused) {
			t.Errorf("error does not name the endpoint %s: %q", unused, r.Stderr)
		}
		oneLineError(t, "get with every endpoint down", c.RunCLI("kv", "get", "--endpoint", unused+","+c.Node(0).Endpoint(), "cli/k"))
		oneLineError(t, "put to a malformed endpoint", c.RunCLI("kv", "put", "--endpoint", "http://[::1", "cli/k", "v"))
	})
}

// TestCertsInit checks `centra certs init` with several addresses per node,
// as its --node usage documents: NAME=IP[,IP|DNS...].
func TestCertsInit(t *testing.T) {
	dir := t.TempDir()
	r := framework.RunCLI("certs", "init", "--dir", dir, "--node", "n1=127.0.0.1,::1,localhost", "--node", "n2=10.0.0.2")
	if r.Err != nil {
		t.Fatalf("certs init with several addresses: %s", r)
	}
	for _, f := range []string{"ca.crt", "ca.key", "n1.crt", "n1.key", "n2.crt", "n2.key", "client.crt", "client.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("certs init did not write %s: %v", f, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "n1.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("n1.crt: no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("127.0.0.1")) }) ||
		!slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv6loopback) }) ||
		!slices.Contains(cert.DNSNames, "localhost") {
		t.Errorf("n1.crt SANs: IPs %v DNS %v; want 127.0.0.1, ::1 and localhost", cert.IPAddresses, cert.DNSNames)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("n1.crt usages %v: want server and client auth", cert.ExtKeyUsage)
	}
}
