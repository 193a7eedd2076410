package grpcmux

import (
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// ServeMux serves r with mux, except that a gRPC request for a service or
// method mux does not serve gets gRPC's Unimplemented status (a
// trailers-only response, the message grpc-go's own server gives) instead
// of mux's HTTP 404, which gRPC clients report as a malformed response
// rather than a status. Bridge passes grpc-go's unknown methods here too.
// Other requests cost one header lookup.
func ServeMux(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		if msg := unknownMethod(mux, r); msg != "" {
			h := w.Header()
			h.Set("Content-Type", "application/grpc")
			h.Set("Grpc-Status", fmt.Sprint(int(codes.Unimplemented)))
			h.Set("Grpc-Message", msg)
			w.WriteHeader(http.StatusOK)
			return
		}
	}
	mux.ServeHTTP(w, r)
}

// unknownMethod returns why r's method is not served ("" when it is):
// mux has no route for its service, or the service's descriptor (every
// generated service registers one) has no such method.
func unknownMethod(mux *http.ServeMux, r *http.Request) string {
	service, method, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if _, pattern := mux.Handler(r); pattern == "" {
		return "unknown service " + service
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return "" // not a generated service: its handler decides
	}
	if sd, ok := d.(protoreflect.ServiceDescriptor); ok && sd.Methods().ByName(protoreflect.Name(method)) == nil {
		return fmt.Sprintf("unknown method %s for service %s", method, service)
	}
	return ""
}
