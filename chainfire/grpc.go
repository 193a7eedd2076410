package chainfire

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// MaxGRPCRecvBytes is the largest request message the API accepts (etcd's
// request limit plus room for the envelope), for grpc.MaxRecvMsgSize.
const MaxGRPCRecvBytes = maxRequestBytes + 64*1024

// RegisterGRPC registers etcd's KV service, Watch and LeaseKeepAlive on a
// grpc-go server (internal/grpcmux bridges the other methods to the
// Connect handlers). current returns the running Server, or nil while the
// node starts: calls then fail with Unavailable, as the Connect routes
// answer 503 meanwhile. Each call runs the same interceptors and kvService
// method as the Connect route, with the incoming metadata they read as
// request headers (grpcHeaders), so both paths have one behaviour.
func RegisterGRPC(reg grpc.ServiceRegistrar, current func() *Server) {
	reg.RegisterService(&kvServiceDesc, kvGRPC{current: current})
	registerGRPCStreams(reg, current)
}

type kvGRPC struct{ current func() *Server }

// kvGRPCServer is the HandlerType of kvServiceDesc.
type kvGRPCServer interface{ server() *Server }

func (k kvGRPC) server() *Server { return k.current() }

// grpcHeaders are the metadata keys the shared interceptors read (the auth
// token, etcd's require-leader flag) and their http.Header keys: a call
// copies only these into the Connect request, not every header it came with
// (canonicalising each was 1.5-4% of the leader's CPU under put-100).
var grpcHeaders = [...]struct{ md, header string }{
	{tokenHeader, http.CanonicalHeaderKey(tokenHeader)},
	{requireLeaderKey, http.CanonicalHeaderKey(requireLeaderKey)},
}

// copyGRPCHeaders copies the incoming metadata of grpcHeaders into the
// header that header returns, calling it only when a key is present. It
// looks the keys up one by one: metadata.FromIncomingContext copies every
// key the call came with.
func copyGRPCHeaders(ctx context.Context, header func() http.Header) {
	for _, k := range grpcHeaders {
		if vs := metadata.ValueFromIncomingContext(ctx, k.md); len(vs) > 0 {
			header()[k.header] = vs
		}
	}
}

// unary adapts a kvService method to a grpc-go method handler.
func unary[Req, Resp any](call func(*kvService, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)) grpc.MethodHandler {
	// The interceptor chain around call, built once per Server rather than
	// per request.
	type chain struct {
		svc  *kvService
		next connect.UnaryFunc
	}
	var cached atomic.Pointer[chain]
	return func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		in := new(Req)
		if err := dec(in); err != nil {
			return nil, err
		}
		s := srv.(kvGRPCServer).server()
		if s == nil {
			return nil, status.Error(codes.Unavailable, "not ready: starting, or waiting to be added to a cluster")
		}
		c := cached.Load()
		if c == nil || c.svc.s != s {
			svc := &kvService{s}
			next := connect.UnaryFunc(func(ctx context.Context, r connect.AnyRequest) (connect.AnyResponse, error) {
				return call(svc, ctx, r.(*connect.Request[Req]))
			})
			// Connect runs the first interceptor outermost.
			icpts := s.interceptors()
			for i := len(icpts) - 1; i >= 0; i-- {
				next = icpts[i].WrapUnary(next)
			}
			c = &chain{svc: svc, next: next}
			cached.Store(c)
		}
		req := connect.NewRequest(in)
		copyGRPCHeaders(ctx, req.Header)
		resp, err := c.next(ctx, req)
		if err != nil {
			return nil, grpcError(err)
		}
		return resp.Any(), nil
	}
}

// grpcError turns a Connect error into a gRPC status (the codes are the
// same numbers; the message is what etcd clients match).
func grpcError(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return status.Error(codes.Code(ce.Code()), ce.Message())
	}
	return status.Error(codes.Unknown, err.Error())
}

var kvServiceDesc = grpc.ServiceDesc{
	ServiceName: "etcdserverpb.KV",
	HandlerType: (*kvGRPCServer)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Range", Handler: unary((*kvService).Range)},
		{MethodName: "Put", Handler: unary((*kvService).Put)},
		{MethodName: "DeleteRange", Handler: unary((*kvService).DeleteRange)},
		{MethodName: "Txn", Handler: unary((*kvService).Txn)},
		{MethodName: "Compact", Handler: unary((*kvService).Compact)},
	},
	Metadata: "etcdserverpb/rpc.proto",
}
