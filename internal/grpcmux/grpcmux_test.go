package grpcmux_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/centra-cloud/centra/config"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/internal/grpcmux"
	centratls "github.com/centra-cloud/centra/shared/tls"
)

type maintenance struct {
	etcdserverpbconnect.UnimplementedMaintenanceHandler
}

func (maintenance) Status(_ context.Context, req *connect.Request[etcdserverpb.StatusRequest]) (*connect.Response[etcdserverpb.StatusResponse], error) {
	return connect.NewResponse(&etcdserverpb.StatusResponse{Version: "test", DbSize: 42}), nil
}

func (maintenance) Defragment(context.Context, *connect.Request[etcdserverpb.DefragmentRequest]) (*connect.Response[etcdserverpb.DefragmentResponse], error) {
	return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("etcdserver: not capable: ünïcode % message"))
}

// serve starts net/http (a Connect service and /plain) and grpc-go (a
// native test service and the bridge) on one split listener, over TLS when
// tc is set.
func serve(t *testing.T, tc *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(etcdserverpbconnect.NewMaintenanceHandler(maintenance{}))
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, fmt.Sprintf("plain %s tls=%v", r.Proto, r.TLS != nil))
	})
	hs := centratls.NewServer(mux, tc, nil)
	h2 := &http2.Server{}
	httpLn, grpcLn := grpcmux.Split(ln, grpcmux.Options{
		Log: slog.New(slog.DiscardHandler), TLS: tc,
		ServeH2: func(c net.Conn) { h2.ServeConn(c, &http2.ServeConnOpts{BaseConfig: hs, Handler: mux}) },
	})
	gs := grpc.NewServer(grpc.ForceServerCodecV2(grpcmux.Codec{}), grpc.UnknownServiceHandler(grpcmux.Bridge(func() http.Handler { return mux })))
	gs.RegisterService(&grpc.ServiceDesc{
		ServiceName: "test.Native",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Status", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var req etcdserverpb.StatusRequest
			if err := dec(&req); err != nil {
				return nil, err
			}
			return &etcdserverpb.StatusResponse{Version: "native"}, nil
		}}},
	}, struct{}{})
	go hs.Serve(httpLn)
	go gs.Serve(grpcLn)
	t.Cleanup(func() {
		gs.Stop()
		hs.Close()
	})
	return ln.Addr().String()
}

func TestGRPCClientGoesToGRPCGoAndIsBridged(t *testing.T) {
	testGRPCClient(t, nil, insecure.NewCredentials())
}

func TestGRPCClientOverTLS(t *testing.T) {
	server, client := tlsConfigs(t)
	testGRPCClient(t, server, credentials.NewTLS(client))
}

func testGRPCClient(t *testing.T, tc *tls.Config, creds credentials.TransportCredentials) {
	addr := serve(t, tc)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var resp etcdserverpb.StatusResponse
	// Only grpc-go has test.Native: the connection went to grpc-go.
	if err := cc.Invoke(ctx, "/test.Native/Status", &etcdserverpb.StatusRequest{}, &resp); err != nil || resp.Version != "native" {
		t.Fatalf("native Status = %v, %v; want version native (was the connection routed to grpc-go?)", &resp, err)
	}
	if err := cc.Invoke(ctx, "/etcdserverpb.Maintenance/Status", &etcdserverpb.StatusRequest{}, &resp); err != nil {
		t.Fatalf("Status through the bridge: %v", err)
	}
	if resp.Version != "test" || resp.DbSize != 42 {
		t.Fatalf("Status = %v, want version test, db size 42", &resp)
	}
	err = cc.Invoke(ctx, "/etcdserverpb.Maintenance/Defragment", &etcdserverpb.DefragmentRequest{}, &etcdserverpb.DefragmentResponse{})
	if s := status.Convert(err); s.Code() != codes.FailedPrecondition || s.Message() != "etcdserver: not capable: ünïcode % message" {
		t.Fatalf("Defragment error = %v, want FailedPrecondition with the handler's message", err)
	}
	err = cc.Invoke(ctx, "/etcdserverpb.Maintenance/Alarm", &etcdserverpb.AlarmRequest{}, &etcdserverpb.AlarmResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("Alarm error = %v, want Unimplemented", err)
	}
	err = cc.Invoke(ctx, "/no.Such/Method", &etcdserverpb.AlarmRequest{}, &etcdserverpb.AlarmResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown service error = %v, want Unimplemented (HTTP 404 mapped)", err)
	}
}

func TestConnectAndHTTPClientsStayOnNetHTTP(t *testing.T) {
	testConnectAndHTTPClients(t, nil, nil)
}

func TestConnectAndHTTPClientsOverTLS(t *testing.T) {
	server, client := tlsConfigs(t)
	testConnectAndHTTPClients(t, server, client)
}

func testConnectAndHTTPClients(t *testing.T, tc, clientTLS *tls.Config) {
	addr := serve(t, tc)
	scheme, secure := "http://", "false"
	if tc != nil {
		scheme, secure = "https://", "true"
	}
	hc := centratls.HTTPClient(clientTLS, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// connect-go's gRPC protocol, then a plain request, on one HTTP/2
	// connection: both must work.
	for range 3 {
		resp, err := etcdserverpbconnect.NewMaintenanceClient(hc, scheme+addr, connect.WithGRPC()).Status(ctx, connect.NewRequest(&etcdserverpb.StatusRequest{}))
		if err != nil || resp.Msg.Version != "test" {
			t.Fatalf("connect Status = %v, %v", resp, err)
		}
		getPlain(t, hc, scheme+addr, "plain HTTP/2.0 tls="+secure)
	}
	// HTTP/1.1.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}
	if clientTLS != nil {
		c := clientTLS.Clone()
		c.NextProtos = []string{"http/1.1"}
		h1.Transport = &http.Transport{TLSClientConfig: c}
	}
	getPlain(t, h1, scheme+addr, "plain HTTP/1.1 tls="+secure)
}

// getPlain GETs /plain and checks the answer.
func getPlain(t *testing.T, hc *http.Client, base, want string) {
	t.Helper()
	r, err := hc.Get(base + "/plain")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if string(body) != want {
		t.Fatalf("GET /plain = %q, want %q", body, want)
	}
}

// tlsConfigs issues a CA and a certificate for 127.0.0.1 and returns the
// server's and a client's configuration, as centra builds them.
func tlsConfigs(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	if _, err := centratls.Generate(dir, []centratls.NodeSpec{{Name: "n1", IPs: []net.IP{net.ParseIP("127.0.0.1")}}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	server, err := centratls.ServerConfig(config.TLS{CertFile: filepath.Join(dir, "n1.crt"), KeyFile: filepath.Join(dir, "n1.key"), CAFile: filepath.Join(dir, "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	client, err = centratls.ClientConfig(config.TLS{CAFile: filepath.Join(dir, "ca.crt")}, "")
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}
