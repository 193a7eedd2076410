package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/config"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/gen/mvccpb"
	centratls "github.com/centra-cloud/centra/shared/tls"
)

// fakeKV answers every Range with one key: these tests are about the
// client's TLS, not about the server.
type fakeKV struct {
	etcdserverpbconnect.UnimplementedKVHandler
}

func (fakeKV) Range(context.Context, *connect.Request[etcdserverpb.RangeRequest]) (*connect.Response[etcdserverpb.RangeResponse], error) {
	return connect.NewResponse(&etcdserverpb.RangeResponse{Header: &etcdserverpb.ResponseHeader{}, Kvs: []*mvccpb.KeyValue{{Key: []byte("k"), Value: []byte("v")}}, Count: 1}), nil
}

// serveKV serves fakeKV on a loopback port, over TLS with cfg (nil: h2c),
// and returns the http:// endpoint the runbooks write.
func serveKV(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(etcdserverpbconnect.NewKVHandler(fakeKV{}))
	srv := centratls.NewServer(mux, cfg, nil)
	go func() { _ = srv.Serve(centratls.Listener(srv, ln)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// certDir generates a CA, a node certificate "srv" for 127.0.0.1 and a
// client certificate valid for validity.
func certDir(t *testing.T, validity time.Duration) string {
	t.Helper()
	dir := t.TempDir()
	node, err := centratls.ParseNodeSpec("srv=127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := centratls.Generate(dir, []centratls.NodeSpec{node}, validity); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tlsKVGet runs `centra kv get --endpoint EP k` and returns stdout, stderr
// and the exit code.
func tlsKVGet(ep string, args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := Run(append(append([]string{"centra", "kv", "get", "--endpoint", ep}, args...), "k"), &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestClientTLS runs the CLI against a TLS server that requires client
// certificates, with http:// endpoints as the runbooks write them: TLS
// material from centra's or etcdctl's environment variables makes it work;
// each way of getting TLS wrong fails with a message naming the problem.
func TestClientTLS(t *testing.T) {
	dir := certDir(t, time.Hour)
	other := certDir(t, time.Hour)
	srvTLS, err := centratls.ServerConfig(config.TLS{CertFile: filepath.Join(dir, "srv.crt"), KeyFile: filepath.Join(dir, "srv.key"), CAFile: filepath.Join(dir, "ca.crt"), RequireClientCert: true})
	if err != nil {
		t.Fatal(err)
	}
	tlsEP := serveKV(t, srvTLS)
	plainEP := serveKV(t, nil)
	files := func(d string) (string, string, string) {
		return filepath.Join(d, "ca.crt"), filepath.Join(d, "client.crt"), filepath.Join(d, "client.key")
	}
	ca, cert, key := files(dir)
	_, otherCert, otherKey := files(other)
	otherCA := filepath.Join(other, "ca.crt")
	expired := certDir(t, time.Nanosecond)
	_, expiredCert, expiredKey := files(expired)

	for _, tc := range []struct {
		name string
		env  map[string]string
		ep   string
		want string // in stderr; "" means success
	}{
		{"centra env", map[string]string{"CENTRA_CACERT": ca, "CENTRA_CERT": cert, "CENTRA_KEY": key}, tlsEP, ""},
		{"etcdctl env", map[string]string{"ETCDCTL_CACERT": ca, "ETCDCTL_CERT": cert, "ETCDCTL_KEY": key}, tlsEP, ""},
		{"plain client, TLS server", nil, tlsEP, "the server speaks TLS and this client does not"},
		{"no client certificate", map[string]string{"CENTRA_CACERT": ca}, tlsEP, "the server requires a client certificate"},
		{"foreign client certificate", map[string]string{"CENTRA_CACERT": ca, "CENTRA_CERT": otherCert, "CENTRA_KEY": otherKey}, tlsEP, "the server rejected the client certificate " + otherCert},
		{"expired client certificate", map[string]string{"CENTRA_CACERT": ca, "CENTRA_CERT": expiredCert, "CENTRA_KEY": expiredKey}, tlsEP, "client certificate " + expiredCert},
		{"foreign server certificate", map[string]string{"CENTRA_CACERT": otherCA, "CENTRA_CERT": cert, "CENTRA_KEY": key}, tlsEP, "the server's certificate is not signed by the CA in " + otherCA},
		{"TLS client, plain server", map[string]string{"CENTRA_CACERT": ca, "CENTRA_CERT": cert, "CENTRA_KEY": key}, plainEP, "the server does not speak TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []string{"CENTRA_CACERT", "CENTRA_CERT", "CENTRA_KEY", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY"} {
				t.Setenv(v, tc.env[v])
			}
			out, errOut, code := tlsKVGet(tc.ep)
			if tc.want == "" {
				if code != 0 || out != "v\n" {
					t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
				}
				return
			}
			t.Logf("%s", strings.TrimSpace(errOut))
			if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
				t.Fatalf("exit %d, stderr %q; want one line containing %q", code, errOut, tc.want)
			}
		})
	}
}
