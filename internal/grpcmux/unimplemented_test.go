package grpcmux_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/internal/grpcmux"
)

// TestServeMuxUnimplemented: gRPC requests for a service the mux does not
// serve, or a method its service does not have, get gRPC's Unimplemented
// (not HTTP 404); served methods and non-gRPC requests reach the mux.
func TestServeMuxUnimplemented(t *testing.T) {
	mux := http.NewServeMux()
	served := 0
	mux.Handle(etcdserverpbconnect.KVRangeProcedure, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served++
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("/etcdserverpb.KV/", http.NotFound)
	for _, tc := range []struct {
		path, contentType string
		wantStatus        string // Grpc-Status, "" = the mux answered
		wantHTTP          int
	}{
		{"/etcdserverpb.Nope/Get", "application/grpc", "12", http.StatusOK},
		{"/etcdserverpb.KV/Nope", "application/grpc+proto", "12", http.StatusOK},
		{"/etcdserverpb.Watch/Watch", "application/grpc", "12", http.StatusOK}, // not mounted
		{etcdserverpbconnect.KVRangeProcedure, "application/grpc", "", http.StatusNoContent},
		{"/etcdserverpb.Nope/Get", "application/json", "", http.StatusNotFound},
	} {
		r := httptest.NewRequest(http.MethodPost, tc.path, nil)
		r.Header.Set("Content-Type", tc.contentType)
		w := httptest.NewRecorder()
		grpcmux.ServeMux(mux, w, r)
		if got := w.Header().Get("Grpc-Status"); got != tc.wantStatus || w.Code != tc.wantHTTP {
			t.Errorf("%s (%s): HTTP %d grpc-status %q (%q), want HTTP %d grpc-status %q",
				tc.path, tc.contentType, w.Code, got, w.Header().Get("Grpc-Message"), tc.wantHTTP, tc.wantStatus)
		}
	}
	if served != 1 {
		t.Errorf("the served method was called %d times, want 1", served)
	}
}
