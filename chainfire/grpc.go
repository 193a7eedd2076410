package chainfire

import (
	"context"
	"errors"
	"strings"

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
// method as the Connect route, with the incoming metadata as request
// headers, so both paths have one behaviour.
func RegisterGRPC(reg grpc.ServiceRegistrar, current func() *Server) {
	reg.RegisterService(&kvServiceDesc, kvGRPC{current: current})
	registerGRPCStreams(reg, current)
}

type kvGRPC struct{ current func() *Server }

// kvGRPCServer is the HandlerType of kvServiceDesc.
type kvGRPCServer interface{ service() *kvService }

func (k kvGRPC) service() *kvService {
	if s := k.current(); s != nil {
		return &kvService{s}
	}
	return nil
}

// unary adapts a kvService method to a grpc-go method handler.
func unary[Req, Resp any](call func(*kvService, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		in := new(Req)
		if err := dec(in); err != nil {
			return nil, err
		}
		svc := srv.(kvGRPCServer).service()
		if svc == nil {
			return nil, status.Error(codes.Unavailable, "not ready: starting, or waiting to be added to a cluster")
		}
		req := connect.NewRequest(in)
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			for k, vs := range md {
				if !strings.HasPrefix(k, ":") {
					for _, v := range vs {
						req.Header().Add(k, v)
					}
				}
			}
		}
		next := connect.UnaryFunc(func(ctx context.Context, r connect.AnyRequest) (connect.AnyResponse, error) {
			return call(svc, ctx, r.(*connect.Request[Req]))
		})
		// Connect runs the first interceptor outermost.
		icpts := svc.s.interceptors()
		for i := len(icpts) - 1; i >= 0; i-- {
			next = icpts[i].WrapUnary(next)
		}
		resp, err := next(ctx, req)
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
