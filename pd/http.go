package pd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/centra-cloud/centra/chainfire/client"
)

// APIPrefix is where the HTTP API is served.
const APIPrefix = "/pd/api/v1"

// forwardedHeader marks a request a follower forwarded to the leader, so a
// stale leader hint never loops.
const forwardedHeader = "X-Centra-Pd-Forwarded"

// maxBody bounds request bodies of the HTTP API.
const maxBody = 1 << 20

// httpTimeout bounds one HTTP API request's work on the system keyspace.
const httpTimeout = 10 * time.Second

// HTTPHandler serves TiKV PD's HTTP API under /pd/api/v1 (mount it at
// "/pd/api/v1/" on the API listener). On a follower every request is
// forwarded to the metadata shard's leader, so each node answers the same.
// Mutations reply with a bare JSON string, errors too, as PD does.
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	p := APIPrefix
	mux.HandleFunc("GET "+p+"/stores", s.handleStores)
	mux.HandleFunc("GET "+p+"/store/{id}", s.handleStore)
	mux.HandleFunc("DELETE "+p+"/store/{id}", s.handleDeleteStore)
	mux.HandleFunc("POST "+p+"/store/{id}/state", s.handleStoreState)
	mux.HandleFunc("POST "+p+"/store/{id}/weight", s.handleStoreWeight)
	mux.HandleFunc("POST "+p+"/store/{id}/limit", s.handleSetStoreLimits)
	mux.HandleFunc("GET "+p+"/stores/limit", s.handleStoreLimits)
	mux.HandleFunc("POST "+p+"/stores/limit", s.handleSetStoreLimits)
	mux.HandleFunc("DELETE "+p+"/stores/remove-tombstone", s.handleRemoveTombstones)
	mux.HandleFunc("GET "+p+"/regions", s.handleRegions)
	mux.HandleFunc("GET "+p+"/region/id/{id}", s.handleRegionByID)
	mux.HandleFunc("GET "+p+"/region/key/{key...}", s.handleRegionByKey)
	mux.HandleFunc("GET "+p+"/stats/region", s.handleRegionStats)
	mux.HandleFunc("GET "+p+"/operators", s.handleOperators)
	mux.HandleFunc("GET "+p+"/operators/records", s.handleOperatorRecords)
	mux.HandleFunc("GET "+p+"/operators/{region_id}", s.handleOperator)
	mux.HandleFunc("POST "+p+"/operators", s.handleAddOperator)
	mux.HandleFunc("DELETE "+p+"/operators/{region_id}", s.handleDeleteOperator)
	mux.HandleFunc("GET "+p+"/config/schedule", s.handleGetSchedule)
	mux.HandleFunc("POST "+p+"/config/schedule", s.handlePostSchedule)
	mux.HandleFunc("GET "+p+"/config/replicate", s.handleGetReplicate)
	mux.HandleFunc("POST "+p+"/config/replicate", s.handlePostReplicate)
	mux.HandleFunc("GET "+p+"/schedulers", s.handleSchedulers)
	mux.HandleFunc("POST "+p+"/schedulers", s.handleAddScheduler)
	mux.HandleFunc("DELETE "+p+"/schedulers/{name}", s.handleRemoveScheduler)
	mux.HandleFunc("POST "+p+"/schedulers/{name}", s.handlePauseScheduler)
	mux.HandleFunc("GET "+p+"/health", s.handleHealth)
	mux.HandleFunc("GET "+p+"/members", s.handleMembers)
	mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, fmt.Sprintf("no such PD API: %s %s", r.Method, r.URL.Path))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), httpTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		// health and members describe the control plane, not PD state:
		// every node answers them itself.
		local := strings.HasSuffix(r.URL.Path, "/health") || strings.HasSuffix(r.URL.Path, "/members")
		if !local && !s.cfg.KV.IsLeader() {
			s.forward(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// forward proxies r to the leader's API URL.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(forwardedHeader) != "" {
		writeJSON(w, http.StatusServiceUnavailable, "pd: forwarded request reached a node that is not the leader (leader changing?); retry")
		return
	}
	leader, err := s.cfg.KV.LeaderURL(r.Context())
	if err != nil || leader == "" {
		writeJSON(w, http.StatusServiceUnavailable, fmt.Sprintf("pd: not leader and no leader known: %v", err))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, "pd: read body: "+err.Error())
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimRight(leader, "/")+r.URL.RequestURI(), strings.NewReader(string(body)))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, "pd: forward: "+err.Error())
		return
	}
	req.Header = r.Header.Clone()
	req.Header.Set(forwardedHeader, "1")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, fmt.Sprintf("pd: forward to leader %s: %v", leader, err))
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// writeJSON writes v indented, as PD's renderer does.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`"pd: encode response"`)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// httpStatus maps PD errors to HTTP status codes (the one table).
var httpStatus = []struct {
	err    error
	status int
}{
	{ErrInvalidArgument, http.StatusBadRequest},
	{ErrTooFewStores, http.StatusBadRequest},
	{ErrStoreNotFound, http.StatusNotFound},
	{ErrRegionNotFound, http.StatusNotFound},
	{ErrSchedulerNotFound, http.StatusNotFound},
	{ErrOperatorNotFound, http.StatusNotFound},
	{ErrStoreTombstone, http.StatusGone},
	{ErrStoreConflict, http.StatusConflict},
	{ErrStaleRegion, http.StatusConflict},
	{ErrNotLeader, http.StatusServiceUnavailable},
	{client.ErrNotLeader, http.StatusServiceUnavailable},
	{ErrConcurrentUpdate, http.StatusServiceUnavailable},
	{context.DeadlineExceeded, http.StatusGatewayTimeout},
}

func statusOf(err error) int {
	for _, e := range httpStatus {
		if errors.Is(err, e.err) {
			return e.status
		}
	}
	return http.StatusInternalServerError
}

func writeErr(w http.ResponseWriter, err error) { writeJSON(w, statusOf(err), err.Error()) }

// readBody reads a bounded request body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read body: %w", ErrInvalidArgument, err)
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("%w: body exceeds %d bytes", ErrInvalidArgument, maxBody)
	}
	return b, nil
}
