package chainfire

import (
	"context"
	"errors"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
)

// bidiStream is what the streaming etcd services (Watch, LeaseKeepAlive)
// use of a bidirectional stream. connect.BidiStream implements it on the
// Connect route and typedConn on grpc-go's, so one implementation of each
// service serves both.
type bidiStream[Req, Resp any] interface {
	Receive() (*Req, error)
	Send(*Resp) error
	RequestHeader() http.Header
}

// registerGRPCStreams registers etcd's Watch and LeaseKeepAlive natively on
// a grpc-go server (Lease's unary methods stay bridged: grpc-go hands a
// known service's unregistered methods to its unknown-service handler).
// Without them every watch event and keep-alive was marshalled by
// connect-go into an HTTP body and copied into a gRPC message by the
// bridge.
func registerGRPCStreams(reg grpc.ServiceRegistrar, current func() *Server) {
	reg.RegisterService(&watchServiceDesc, kvGRPC{current: current})
	reg.RegisterService(&leaseStreamsDesc, kvGRPC{current: current})
}

var (
	watchServiceDesc = bidiServiceDesc("Watch", "Watch", grpcBidi(etcdserverpbconnect.WatchWatchProcedure, (*Server).serveWatch))
	leaseStreamsDesc = bidiServiceDesc("Lease", "LeaseKeepAlive", grpcBidi(etcdserverpbconnect.LeaseLeaseKeepAliveProcedure, (*Server).serveKeepAlive))
)

// bidiServiceDesc describes the one bidirectional stream of etcd's service
// that grpc-go serves natively (the service's other methods are bridged).
func bidiServiceDesc(service, stream string, handler grpc.StreamHandler) grpc.ServiceDesc {
	return grpc.ServiceDesc{
		ServiceName: "etcdserverpb." + service,
		HandlerType: (*kvGRPCServer)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    stream,
			Handler:       handler,
			ServerStreams: true,
			ClientStreams: true,
		}},
		Metadata: "etcdserverpb/rpc.proto",
	}
}

// grpcBidi adapts a bidirectional etcd service to a grpc-go stream
// handler: the call runs the same interceptors as the Connect route
// (require-leader, auth), with the incoming metadata they read as request
// headers (grpcHeaders), then serve with the stream typed.
func grpcBidi[Req, Resp any](procedure string, serve func(*Server, context.Context, bidiStream[Req, Resp]) error) grpc.StreamHandler {
	spec := connect.Spec{Procedure: procedure, StreamType: connect.StreamTypeBidi}
	return func(srv any, stream grpc.ServerStream) error {
		s := srv.(kvGRPCServer).server()
		if s == nil {
			return status.Error(codes.Unavailable, "not ready: starting, or waiting to be added to a cluster")
		}
		ctx := stream.Context()
		conn := &grpcConn{stream: stream, spec: spec, header: http.Header{}}
		copyGRPCHeaders(ctx, func() http.Header { return conn.header })
		next := connect.StreamingHandlerFunc(func(ctx context.Context, c connect.StreamingHandlerConn) error {
			return serve(s, ctx, typedConn[Req, Resp]{c})
		})
		// Connect runs the first interceptor outermost.
		icpts := s.interceptors()
		for i := len(icpts) - 1; i >= 0; i-- {
			next = icpts[i].WrapStreamingHandler(next)
		}
		err := next(ctx, conn)
		var ce *connect.Error
		if errors.As(err, &ce) {
			return grpcError(err)
		}
		return err // nil, or grpc-go's own error (a status) from the stream
	}
}

// grpcConn presents a grpc-go server stream as the connect-go stream the
// interceptors wrap. Response headers and trailers are not sent: the etcd
// streaming services set none.
type grpcConn struct {
	stream grpc.ServerStream
	spec   connect.Spec
	header http.Header
}

func (c *grpcConn) Spec() connect.Spec { return c.spec }

func (c *grpcConn) Peer() connect.Peer {
	p := connect.Peer{Protocol: connect.ProtocolGRPC}
	if pr, ok := peer.FromContext(c.stream.Context()); ok && pr.Addr != nil {
		p.Addr = pr.Addr.String()
	}
	return p
}

func (c *grpcConn) Receive(msg any) error        { return c.stream.RecvMsg(msg) }
func (c *grpcConn) RequestHeader() http.Header   { return c.header }
func (c *grpcConn) Send(msg any) error           { return c.stream.SendMsg(msg) }
func (c *grpcConn) ResponseHeader() http.Header  { return http.Header{} }
func (c *grpcConn) ResponseTrailer() http.Header { return http.Header{} }

// typedConn is a (possibly interceptor-wrapped) stream with the message
// types of its service.
type typedConn[Req, Resp any] struct{ conn connect.StreamingHandlerConn }

func (t typedConn[Req, Resp]) Receive() (*Req, error) {
	m := new(Req)
	if err := t.conn.Receive(m); err != nil {
		return nil, err
	}
	return m, nil
}

func (t typedConn[Req, Resp]) Send(m *Resp) error         { return t.conn.Send(m) }
func (t typedConn[Req, Resp]) RequestHeader() http.Header { return t.conn.RequestHeader() }
