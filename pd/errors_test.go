package pd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/chainfire/client"
)

func TestErrorTables(t *testing.T) {
	sv := &service{s: newLeader(t).s}
	for _, tc := range []struct {
		err    error
		code   connect.Code
		status int
	}{
		{fmt.Errorf("x: %w", ErrInvalidArgument), connect.CodeInvalidArgument, http.StatusBadRequest},
		{ErrTooFewStores, connect.CodeFailedPrecondition, http.StatusBadRequest},
		{ErrStoreNotFound, connect.CodeNotFound, http.StatusNotFound},
		{ErrRegionNotFound, connect.CodeNotFound, http.StatusNotFound},
		{ErrStoreTombstone, connect.CodeFailedPrecondition, http.StatusGone},
		{&StoreConflictError{StoreID: 1, Address: "a", ExistingID: 1, ExistingAddress: "b"}, connect.CodeAlreadyExists, http.StatusConflict},
		{ErrConcurrentUpdate, connect.CodeAborted, http.StatusServiceUnavailable},
		{ErrNotLeader, connect.CodeUnavailable, http.StatusServiceUnavailable},
		{client.ErrNotLeader, connect.CodeUnavailable, http.StatusServiceUnavailable},
		{context.DeadlineExceeded, connect.CodeDeadlineExceeded, http.StatusGatewayTimeout},
		{errors.New("boom"), connect.CodeInternal, http.StatusInternalServerError},
	} {
		if got := connect.CodeOf(sv.connectError(context.Background(), tc.err)); got != tc.code {
			t.Errorf("connect code of %v = %v, want %v", tc.err, got, tc.code)
		}
		if got := statusOf(tc.err); got != tc.status {
			t.Errorf("HTTP status of %v = %d, want %d", tc.err, got, tc.status)
		}
	}
}

func TestStoreConflictMessages(t *testing.T) {
	id := &StoreConflictError{StoreID: 4, Address: "10.0.0.9:2379", ExistingID: 4, ExistingAddress: "10.0.0.4:2379"}
	if got, want := id.Error(), "pd: store_id 4 is already registered by 10.0.0.4:2379; this store is 10.0.0.9:2379: give it a new store_id and wipe its data dir"; got != want {
		t.Errorf("id conflict = %q", got)
	}
	addr := &StoreConflictError{StoreID: 6, Address: "10.0.0.4:2379", ExistingID: 4, ExistingAddress: "10.0.0.4:2379"}
	if !errors.Is(addr, ErrStoreConflict) {
		t.Error("not ErrStoreConflict")
	}
}
