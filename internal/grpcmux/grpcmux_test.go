package grpcmux_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

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

// serve starts net/http (a Connect service and /plain) and grpc-go (only the
// bridge) on one split listener.
func serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(etcdserverpbconnect.NewMaintenanceHandler(maintenance{}))
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain "+r.Proto) })
	httpLn, grpcLn := grpcmux.Split(ln, slog.New(slog.DiscardHandler))
	hs := centratls.NewServer(mux, nil, nil)
	gs := grpc.NewServer(grpc.ForceServerCodec(grpcmux.Codec{}), grpc.UnknownServiceHandler(grpcmux.Bridge(func() http.Handler { return mux })))
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
	addr := serve(t)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
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
	addr := serve(t)
	hc := centratls.HTTPClient(nil, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// connect-go's gRPC protocol, then a plain request, on one HTTP/2
	// connection: both must work.
	for range 3 {
		resp, err := etcdserverpbconnect.NewMaintenanceClient(hc, "http://"+addr, connect.WithGRPC()).Status(ctx, connect.NewRequest(&etcdserverpb.StatusRequest{}))
		if err != nil || resp.Msg.Version != "test" {
			t.Fatalf("connect Status = %v, %v", resp, err)
		}
		r, err := hc.Get("http://" + addr + "/plain")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if string(body) != "plain HTTP/2.0" {
			t.Fatalf("GET /plain over h2c = %q", body)
		}
	}
	// HTTP/1.1.
	r, err := http.Get("http://" + addr + "/plain")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if string(body) != "plain HTTP/1.1" {
		t.Fatalf("GET /plain over HTTP/1.1 = %q", body)
	}
}
