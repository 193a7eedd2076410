package pd

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/centra-cloud/centra/pd/schedule"
)

// handleOperators is GET /operators[?kind=][&object]: TiKV's strings by
// default, objects with ?object.
func (s *Server) handleOperators(w http.ResponseWriter, r *http.Request) {
	ops, err := s.Operators(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	if k := r.URL.Query().Get("kind"); k != "" {
		kind, ok := schedule.ParseKind(k)
		if !ok {
			writeJSON(w, http.StatusBadRequest, fmt.Sprintf("unknown operator kind %q: want admin, leader, region or replica", k))
			return
		}
		var keep []schedule.View
		for _, o := range ops {
			if o.KindFlags&kind != 0 {
				keep = append(keep, o)
			}
		}
		ops = keep
	}
	writeOperators(w, r, ops)
}

// writeOperators writes views as strings, or as objects with ?object.
func writeOperators(w http.ResponseWriter, r *http.Request, ops []schedule.View) {
	if ops == nil {
		ops = []schedule.View{}
	}
	if r.URL.Query().Has("object") {
		writeJSON(w, http.StatusOK, ops)
		return
	}
	strs := make([]string, 0, len(ops))
	for _, o := range ops {
		strs = append(strs, o.String)
	}
	writeJSON(w, http.StatusOK, strs)
}

// handleOperator is GET /operators/{region_id}: the region's live operator.
func (s *Server) handleOperator(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r, "region_id")
	if !ok {
		return
	}
	if err := s.leading(r.Context()); err != nil {
		writeErr(w, err)
		return
	}
	v, found := s.co.Controller().Operator(id)
	if !found {
		writeErr(w, fmt.Errorf("%w: region %d", ErrOperatorNotFound, id))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// handleOperatorRecords is GET /operators/records[?from=UNIX_SECONDS]:
// the finished operators (bounded history), strings or ?object.
func (s *Server) handleOperatorRecords(w http.ResponseWriter, r *http.Request) {
	var from time.Time
	if v := r.URL.Query().Get("from"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, fmt.Sprintf("invalid from %q: want unix seconds", v))
			return
		}
		from = time.Unix(sec, 0)
	}
	ops, err := s.OperatorRecords(r.Context(), from)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeOperators(w, r, ops)
}

func (s *Server) handleAddOperator(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	var req OperatorRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, "invalid operator request: "+err.Error())
		return
	}
	if err := s.AddOperator(r.Context(), req); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, "The operator is created.")
}

func (s *Server) handleDeleteOperator(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r, "region_id")
	if !ok {
		return
	}
	if err := s.RemoveOperator(r.Context(), id); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, "The pending operator is canceled.")
}

// handleSchedulers is GET /schedulers[?status=paused|disabled]; nothing is
// ever disabled (DELETE removes), so ?status=disabled is empty.
func (s *Server) handleSchedulers(w http.ResponseWriter, r *http.Request) {
	var names []string
	var err error
	switch st := r.URL.Query().Get("status"); st {
	case "":
		names, err = s.Schedulers(r.Context())
	case "paused":
		names, err = s.PausedSchedulers(r.Context())
	case "disabled":
		err = s.leading(r.Context())
		names = []string{}
	default:
		writeJSON(w, http.StatusBadRequest, fmt.Sprintf("unknown status %q: want paused or disabled", st))
		return
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, names)
}

func (s *Server) handleAddScheduler(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	var req struct {
		Name    string `json:"name"`
		StoreID uint64 `json:"store_id"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, "invalid scheduler request: "+err.Error())
		return
	}
	if err := s.AddScheduler(r.Context(), req.Name, req.StoreID); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, "The scheduler is created.")
}

func (s *Server) handleRemoveScheduler(w http.ResponseWriter, r *http.Request) {
	if err := s.RemoveScheduler(r.Context(), r.PathValue("name")); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, "The scheduler is removed.")
}

// handlePauseScheduler is POST /schedulers/{name} {"delay": SECONDS}:
// pause for that long, 0 resumes.
func (s *Server) handlePauseScheduler(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	var req struct {
		Delay *int64 `json:"delay"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Delay == nil || *req.Delay < 0 {
		writeJSON(w, http.StatusBadRequest, `want {"delay": SECONDS}: seconds to pause, 0 to resume`)
		return
	}
	if err := s.PauseScheduler(r.Context(), r.PathValue("name"), time.Duration(*req.Delay)*time.Second); err != nil {
		writeErr(w, err)
		return
	}
	if *req.Delay == 0 {
		writeJSON(w, http.StatusOK, "Resume the scheduler successfully.")
		return
	}
	writeJSON(w, http.StatusOK, "Pause the scheduler successfully.")
}

// handleStoreLimits is GET /stores/limit: every store's limit.
func (s *Server) handleStoreLimits(w http.ResponseWriter, r *http.Request) {
	limits, err := s.StoreLimits(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, limits)
}

// storeLimitRequest is TiKV's body of POST /stores/limit and
// /store/{id}/limit: {"rate": N, "type": "add-peer"|"remove-peer"} (no
// type: both).
type storeLimitRequest struct {
	Rate *float64 `json:"rate"`
	Type string   `json:"type"`
}

// handleSetStoreLimits is POST /stores/limit (every store) and POST
// /store/{id}/limit (one).
func (s *Server) handleSetStoreLimits(w http.ResponseWriter, r *http.Request) {
	var id uint64
	if r.PathValue("id") != "" {
		var ok bool
		if id, ok = parseID(w, r, "id"); !ok {
			return
		}
	}
	body, err := readBody(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	var req storeLimitRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Rate == nil {
		writeJSON(w, http.StatusBadRequest, `want {"rate": STEPS_PER_MINUTE, "type": "add-peer" or "remove-peer"} (no type: both)`)
		return
	}
	if err := s.SetStoreLimit(r.Context(), id, req.Type, *req.Rate); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, "The store's label is updated.")
}

// handleStoreState is POST /store/{id}/state?state=Up|Offline.
func (s *Server) handleStoreState(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r, "id")
	if !ok {
		return
	}
	if err := s.SetStoreState(r.Context(), id, r.URL.Query().Get("state")); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, "The store's state is updated.")
}

// handleStoreWeight is POST /store/{id}/weight {"leader": W, "region": W}.
func (s *Server) handleStoreWeight(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r, "id")
	if !ok {
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	var req StoreWeight
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, `want {"leader": WEIGHT, "region": WEIGHT}`)
		return
	}
	if err := s.SetStoreWeight(r.Context(), id, req); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, "The store's weight is updated.")
}

// handleRemoveTombstones is DELETE /stores/remove-tombstone.
func (s *Server) handleRemoveTombstones(w http.ResponseWriter, r *http.Request) {
	if _, err := s.RemoveTombstones(r.Context()); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, "Remove tombstone successfully.")
}
