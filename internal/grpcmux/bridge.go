package grpcmux

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Codec is the grpc-go codec to force on a server that uses Bridge
// (grpc.ForceServerCodecV2): raw bytes for bridged methods, generated
// vtprotobuf code for messages that have it (etcd's API, see buf.gen.yaml)
// and grpc-go's own protobuf codec for the rest. The generated code encodes
// without protobuf-go's reflection; the buffers come from grpc-go's pool
// and are read in place, as grpc-go's codec does.
type Codec struct{}

// frame is one bridged message, still encoded.
type frame []byte

// vtMessage is what protoc-gen-go-vtproto generates for a message.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

// protoCodec is grpc-go's codec, for messages without generated code.
var protoCodec = encoding.GetCodecV2(Codec{}.Name())

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *frame:
		return mem.BufferSlice{mem.SliceBuffer(*m)}, nil
	case vtMessage:
		size := m.SizeVT()
		if mem.IsBelowBufferPoolingThreshold(size) {
			buf := make([]byte, size)
			if _, err := m.MarshalToSizedBufferVT(buf); err != nil {
				return nil, err
			}
			return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
		}
		pool := mem.DefaultBufferPool()
		buf := pool.Get(size)
		if _, err := m.MarshalToSizedBufferVT((*buf)[:size]); err != nil {
			pool.Put(buf)
			return nil, err
		}
		return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
	case proto.Message:
		return protoCodec.Marshal(m)
	}
	return nil, fmt.Errorf("grpcmux: cannot marshal %T", v)
}

// Unmarshal implements encoding.CodecV2.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *frame:
		*m = slices.Grow((*m)[:0], data.Len())[:data.Len()]
		data.CopyTo(*m)
		return nil
	case vtMessage:
		// UnmarshalVT copies what it keeps, so the buffer can go back.
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		return m.UnmarshalVT(buf.ReadOnlyData())
	case proto.Message:
		return protoCodec.Unmarshal(data, m)
	}
	return fmt.Errorf("grpcmux: cannot unmarshal into %T", v)
}

// Name implements encoding.CodecV2.
func (Codec) Name() string { return "proto" }

// Bridge returns a grpc-go handler for methods not registered natively: it
// serves them through handler() (the net/http handler of the API, e.g.
// connect-go's), translating messages, metadata and status.
func Bridge(handler func() http.Handler) grpc.StreamHandler {
	return func(_ any, stream grpc.ServerStream) error {
		method, ok := grpc.MethodFromServerStream(stream)
		if !ok {
			return status.Error(codes.Internal, "grpcmux: no method name on the stream")
		}
		ctx := stream.Context()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://grpc"+method, &bodyReader{stream: stream})
		if err != nil {
			return status.Errorf(codes.Unimplemented, "grpcmux: bad method %q: %v", method, err)
		}
		req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
		req.ContentLength = -1
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			for k, vs := range md {
				// The handler must not compress: grpc-go compresses (or not)
				// what it sends as negotiated with its client.
				if strings.HasPrefix(k, ":") || k == "content-type" || k == "grpc-timeout" || k == "grpc-accept-encoding" || k == "grpc-encoding" {
					continue
				}
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
		}
		req.Header.Set("Content-Type", "application/grpc+proto")
		req.Header.Set("Te", "trailers")
		req.RequestURI = method
		w := &responseWriter{stream: stream, header: http.Header{}}
		handler().ServeHTTP(w, req)
		return w.finish()
	}
}

// bodyReader presents the client's messages as a gRPC request body.
type bodyReader struct {
	stream grpc.ServerStream
	buf    []byte
	msg    frame
	eof    bool
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		if err := r.stream.RecvMsg(&r.msg); err != nil {
			if errors.Is(err, io.EOF) {
				r.eof = true
				return 0, io.EOF
			}
			return 0, err
		}
		r.buf = binary.BigEndian.AppendUint32(append(r.buf[:0], 0), uint32(len(r.msg)))
		r.buf = append(r.buf, r.msg...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *bodyReader) Close() error { return nil }

// responseWriter parses the handler's gRPC response body into messages
// sent on the stream and keeps its status for the end of the call.
type responseWriter struct {
	stream  grpc.ServerStream
	header  http.Header
	status  int
	pending []byte
	sendErr error
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.sendErr != nil {
		return 0, w.sendErr
	}
	w.pending = append(w.pending, p...)
	for len(w.pending) >= 5 {
		n := int(binary.BigEndian.Uint32(w.pending[1:5]))
		if len(w.pending) < 5+n {
			break
		}
		if w.pending[0]&1 != 0 {
			w.sendErr = status.Error(codes.Internal, "grpcmux: compressed response messages are not bridged")
			return 0, w.sendErr
		}
		msg := frame(w.pending[5 : 5+n])
		if err := w.stream.SendMsg(&msg); err != nil {
			w.sendErr = err
			return 0, err
		}
		w.pending = w.pending[5+n:]
	}
	return len(p), nil
}

// Flush implements http.Flusher; messages are sent as soon as complete.
func (w *responseWriter) Flush() {}

// finish returns the call's status from the handler's trailers (or, for a
// response that is not gRPC, from its HTTP status).
func (w *responseWriter) finish() error {
	if w.sendErr != nil {
		return w.sendErr
	}
	trailer := metadata.MD{}
	var code, msg, details string
	for k, vs := range w.header {
		name := strings.ToLower(strings.TrimPrefix(k, http.TrailerPrefix))
		switch name {
		case "grpc-status":
			code = vs[0]
		case "grpc-message":
			msg = vs[0]
		case "grpc-status-details-bin":
			details = vs[0]
		case "content-type", "trailer", "content-length", "date":
		default:
			if strings.HasPrefix(k, http.TrailerPrefix) {
				trailer.Append(name, vs...)
			}
		}
	}
	w.stream.SetTrailer(trailer)
	if code == "" {
		return httpStatusError(w.status)
	}
	c, err := strconv.Atoi(code)
	if err != nil {
		return status.Errorf(codes.Internal, "grpcmux: bad grpc-status %q", code)
	}
	if c == 0 {
		return nil
	}
	if d, err := decodeBinHeader(details); err == nil && len(d) > 0 {
		var sp spb.Status
		if proto.Unmarshal(d, &sp) == nil {
			return status.FromProto(&sp).Err()
		}
	}
	if m, err := url.PathUnescape(msg); err == nil {
		msg = m
	}
	return status.Error(codes.Code(c), msg)
}

func decodeBinHeader(v string) ([]byte, error) {
	if len(v)%4 == 0 {
		return base64.StdEncoding.DecodeString(v)
	}
	return base64.RawStdEncoding.DecodeString(v)
}

// httpStatusError maps an HTTP status without gRPC status (e.g. the 503 of
// a node still starting) the way gRPC clients map it.
func httpStatusError(code int) error {
	c := codes.Unknown
	switch code {
	case http.StatusOK, 0:
		c = codes.Internal
	case http.StatusBadRequest:
		c = codes.Internal
	case http.StatusUnauthorized:
		c = codes.Unauthenticated
	case http.StatusForbidden:
		c = codes.PermissionDenied
	case http.StatusNotFound:
		c = codes.Unimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		c = codes.Unavailable
	}
	return status.Errorf(c, "grpcmux: the handler answered HTTP %d without a gRPC status", code)
}
