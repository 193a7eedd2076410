package pd

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

func parseID(w http.ResponseWriter, r *http.Request, name string) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue(name), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, fmt.Sprintf("invalid %s %q: want an unsigned integer", name, r.PathValue(name)))
		return 0, false
	}
	return id, true
}

// handleStores is GET /stores[?state=N...]: Up and Offline by default.
func (s *Server) handleStores(w http.ResponseWriter, r *http.Request) {
	want := map[metav1.StoreState]bool{metav1.StoreState_STORE_STATE_UP_UNSPECIFIED: true, metav1.StoreState_STORE_STATE_OFFLINE: true}
	if states := r.URL.Query()["state"]; len(states) > 0 {
		want = map[metav1.StoreState]bool{}
		for _, v := range states {
			n, err := strconv.Atoi(v)
			if _, ok := metav1.StoreState_name[int32(n)]; err != nil || !ok {
				writeJSON(w, http.StatusInternalServerError, fmt.Sprintf("unknown store state %q: want 0 (Up), 1 (Offline) or 2 (Tombstone)", v))
				return
			}
			want[metav1.StoreState(n)] = true
		}
	}
	infos, err := s.Stores(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	regions, err := s.ScanRegions(r.Context(), nil, nil, 0)
	if err != nil {
		writeErr(w, err)
		return
	}
	aggs := aggregate(regions)
	out := storesJSON{Stores: []storeJSON{}}
	now := s.now()
	for _, info := range infos {
		if want[info.Store.GetState()] {
			out.Stores = append(out.Stores, toStoreJSON(info, aggs[info.Store.GetId()], now))
		}
	}
	out.Count = len(out.Stores)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleStore(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r, "id")
	if !ok {
		return
	}
	info, err := s.GetStore(r.Context(), id)
	if err != nil {
		writeErr(w, err)
		return
	}
	regions, err := s.ScanRegions(r.Context(), nil, nil, 0)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toStoreJSON(info, aggregate(regions)[id], s.now()))
}

// handleDeleteStore is DELETE /store/{id}[?force]: take the store offline.
func (s *Server) handleDeleteStore(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r, "id")
	if !ok {
		return
	}
	force := r.URL.Query().Has("force")
	if v := r.URL.Query().Get("force"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, fmt.Sprintf("invalid force %q: want true or false", v))
			return
		}
		force = b
	}
	if err := s.DeleteStore(r.Context(), id, force); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, msgStoreOffline)
}

func (s *Server) handleRegions(w http.ResponseWriter, r *http.Request) {
	regions, err := s.ScanRegions(r.Context(), nil, nil, 0)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := regionsJSON{Count: len(regions), Regions: []regionJSON{}}
	for _, info := range regions {
		out.Regions = append(out.Regions, toRegionJSON(info))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleRegionByID(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r, "id")
	if !ok {
		return
	}
	info, err := s.GetRegionByID(r.Context(), id)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toRegionJSON(info))
}

// handleRegionByKey is GET /region/key/{key}: the raw key, or hex with
// ?format=hex.
func (s *Server) handleRegionByKey(w http.ResponseWriter, r *http.Request) {
	key := []byte(r.PathValue("key"))
	if r.URL.Query().Get("format") == "hex" {
		k, err := hex.DecodeString(string(key))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, fmt.Sprintf("invalid hex key %q", key))
			return
		}
		key = k
	}
	info, err := s.GetRegion(r.Context(), key)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toRegionJSON(info))
}

// handleRegionStats is GET /stats/region[?start_key=&end_key=][&count].
func (s *Server) handleRegionStats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	regions, err := s.ScanRegions(r.Context(), []byte(q.Get("start_key")), []byte(q.Get("end_key")), 0)
	if err != nil {
		writeErr(w, err)
		return
	}
	if q.Has("count") {
		writeJSON(w, http.StatusOK, regionStatsJSON{Count: len(regions)})
		return
	}
	writeJSON(w, http.StatusOK, computeRegionStats(regions))
}

// scheduleConfigJSON adds the read-only scheduler list to the config, in
// TiKV's form (schedulers-v2) and as the names the runbook's jq reads
// (schedulers).
type scheduleConfigJSON struct {
	ScheduleConfig
	SchedulersV2 []schedulerConfigJSON `json:"schedulers-v2"`
	Schedulers   []string              `json:"schedulers"`
}

type schedulerConfigJSON struct {
	Type        string   `json:"type"`
	Args        []string `json:"args"`
	Disable     bool     `json:"disable"`
	ArgsPayload string   `json:"args-payload"`
}

func (s *Server) handleGetSchedule(w http.ResponseWriter, r *http.Request) {
	cfg, err := s.ScheduleConfig(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	unlock := s.readCache()
	entries := append([]schedulerEntry(nil), s.schedulers...)
	unlock()
	out := scheduleConfigJSON{ScheduleConfig: cfg, SchedulersV2: []schedulerConfigJSON{}, Schedulers: schedulerNames(entries)}
	for _, e := range entries {
		sc := schedulerConfigJSON{Type: schedulerType(e.Name), Args: []string{}}
		if e.StoreID != 0 {
			sc.Args = []string{strconv.FormatUint(e.StoreID, 10)}
		}
		out.SchedulersV2 = append(out.SchedulersV2, sc)
	}
	writeJSON(w, http.StatusOK, out)
}

// schedulerType is PD's short type of a scheduler name.
func schedulerType(name string) string {
	switch name {
	case "balance-hot-region-scheduler":
		return "hot-region"
	}
	const suffix = "-scheduler"
	if len(name) > len(suffix) && name[len(name)-len(suffix):] == suffix {
		return name[:len(name)-len(suffix)]
	}
	return name
}

func (s *Server) handlePostSchedule(w http.ResponseWriter, r *http.Request) {
	handleConfigPatch(w, r, s.UpdateScheduleConfig)
}

func (s *Server) handleGetReplicate(w http.ResponseWriter, r *http.Request) {
	cfg, err := s.ReplicationConfig(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cfg)
}

func (s *Server) handlePostReplicate(w http.ResponseWriter, r *http.Request) {
	handleConfigPatch(w, r, s.UpdateReplicationConfig)
}

// handleConfigPatch applies a partial JSON config from the request body.
func handleConfigPatch(w http.ResponseWriter, r *http.Request, update func(context.Context, []byte) error) {
	body, err := readBody(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	if err := update(r.Context(), body); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, "The config is updated.")
}

type memberHealthJSON struct {
	Name       string   `json:"name"`
	MemberID   uint64   `json:"member_id"`
	ClientURLs []string `json:"client_urls"`
	Health     bool     `json:"health"`
}

// handleHealth is GET /health: one entry per control-plane member. A
// member counts as healthy when a leader is known (the metadata shard has
// quorum); probing each member comes with the members' status API.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	members, err := s.members(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	_, lerr := s.cfg.KV.LeaderURL(r.Context())
	out := make([]memberHealthJSON, 0, len(members))
	for _, m := range members {
		out = append(out, memberHealthJSON{Name: m.Name, MemberID: m.MemberID, ClientURLs: nonNil(m.ClientURLs), Health: lerr == nil})
	}
	writeJSON(w, http.StatusOK, out)
}

type membersJSON struct {
	Members []Member `json:"members"`
	Leader  *Member  `json:"leader,omitempty"`
}

// handleMembers is GET /members: the control-plane members and the one
// whose client URL is the metadata shard leader's.
func (s *Server) handleMembers(w http.ResponseWriter, r *http.Request) {
	members, err := s.members(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := membersJSON{Members: members}
	if leader, err := s.cfg.KV.LeaderURL(r.Context()); err == nil {
		for i, m := range members {
			for _, u := range m.ClientURLs {
				if u == leader {
					out.Leader = &members[i]
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) members(r *http.Request) ([]Member, error) {
	if s.cfg.Members == nil {
		return []Member{}, nil
	}
	ms, err := s.cfg.Members(r.Context())
	if err != nil {
		return nil, err
	}
	for i := range ms {
		ms[i].PeerURLs, ms[i].ClientURLs = nonNil(ms[i].PeerURLs), nonNil(ms[i].ClientURLs)
	}
	if ms == nil {
		ms = []Member{}
	}
	return ms, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
