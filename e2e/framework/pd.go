//go:build e2e

package framework

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// PDPrefix is the path prefix of the placement driver's HTTP API (TiKV
// PD's) on a control-plane node's API port.
const PDPrefix = "/pd/api/v1"

// Do sends method path (with body, if not empty, as JSON) to the node's
// API listener and returns the status code and body.
func (n *Node) Do(ctx context.Context, method, path, body string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.URL()+path, rd)
	if err != nil {
		return 0, "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := n.httpClient()
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// PDStoreList is GET /pd/api/v1/stores.
type PDStoreList struct {
	Count  int           `json:"count"`
	Stores []PDStoreInfo `json:"stores"`
}

// PDStoreInfo is one store of PDStoreList (TiKV PD's StoreInfo): the
// metapb.Store with state_name, and its status.
type PDStoreInfo struct {
	Store struct {
		ID            uint64 `json:"id"`
		Address       string `json:"address"`
		State         int    `json:"state"` // absent (0) when Up
		StateName     string `json:"state_name"`
		LastHeartbeat int64  `json:"last_heartbeat"` // unix nanoseconds
		NodeState     int    `json:"node_state"`
	} `json:"store"`
	Status struct {
		Capacity        string `json:"capacity"`
		Available       string `json:"available"`
		UsedSize        string `json:"used_size"`
		RegionCount     int    `json:"region_count"`
		LastHeartbeatTS string `json:"last_heartbeat_ts"`
	} `json:"status"`
}

// States returns store_id -> state_name.
func (l PDStoreList) States() map[uint64]string {
	m := map[uint64]string{}
	for _, s := range l.Stores {
		m[s.Store.ID] = s.Store.StateName
	}
	return m
}

// IDs returns the store_ids, sorted.
func (l PDStoreList) IDs() []uint64 {
	var ids []uint64
	for _, s := range l.Stores {
		ids = append(ids, s.Store.ID)
	}
	slices.Sort(ids)
	return ids
}

// Find returns the store with id.
func (l PDStoreList) Find(id uint64) (PDStoreInfo, bool) {
	for _, s := range l.Stores {
		if s.Store.ID == id {
			return s, true
		}
	}
	return PDStoreInfo{}, false
}

// Summary is "id=state@address" for every store, sorted by id: a
// comparable digest of the list.
func (l PDStoreList) Summary() string {
	s := slices.Clone(l.Stores)
	slices.SortFunc(s, func(a, b PDStoreInfo) int { return cmp.Compare(a.Store.ID, b.Store.ID) })
	var parts []string
	for _, st := range s {
		parts = append(parts, fmt.Sprintf("%d=%s@%s", st.Store.ID, st.Store.StateName, st.Store.Address))
	}
	return strings.Join(parts, " ")
}

// testSpaceRatios makes PD judge a store low on space only below 1% free.
// Every store of a test shares the host's disk, so with PD's default
// (low-space-ratio 0.8) a host disk more than 80% full, as on a busy
// developer box, would stop every replica placement of the tests, which
// test scheduling, not the host's disk.
const testSpaceRatios = `{"low-space-ratio": 0.99, "high-space-ratio": 0.98}`

// relaxSpaceRatios sets testSpaceRatios through n's PD API, retrying while
// PD is not ready yet (its leader loads its state after the election),
// until ctx ends.
func (n *Node) relaxSpaceRatios(ctx context.Context) error {
	return WaitForCtx(ctx, func() error {
		code, body, err := n.Do(ctx, http.MethodPost, PDPrefix+"/config/schedule", testSpaceRatios)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d: %s", code, strings.TrimSpace(body))
		}
		if err != nil {
			return fmt.Errorf("%s: POST %s/config/schedule %s: %w", n, PDPrefix, testSpaceRatios, err)
		}
		return nil
	})
}

// PDGetJSON GETs PDPrefix+path and decodes a 200 answer into v.
func (n *Node) PDGetJSON(ctx context.Context, path string, v any) error {
	code, body, err := n.Do(ctx, http.MethodGet, PDPrefix+path, "")
	if err != nil {
		return fmt.Errorf("%s: GET %s: %w", n, path, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: GET %s: status %d: %s", n, path, code, strings.TrimSpace(body))
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		return fmt.Errorf("%s: GET %s: decode %q: %w", n, path, body, err)
	}
	return nil
}

// PDStores is GET /pd/api/v1/stores with query (e.g. "" or
// "state=0&state=1&state=2"). It checks that count matches the list.
func (n *Node) PDStores(ctx context.Context, query string) (PDStoreList, error) {
	path := "/stores"
	if query != "" {
		path += "?" + query
	}
	var l PDStoreList
	if err := n.PDGetJSON(ctx, path, &l); err != nil {
		return l, err
	}
	if l.Count != len(l.Stores) {
		return l, fmt.Errorf("%s: GET %s: count %d but %d stores", n, path, l.Count, len(l.Stores))
	}
	return l, nil
}

// PDStore is GET /pd/api/v1/store/{id}.
func (n *Node) PDStore(ctx context.Context, id uint64) (PDStoreInfo, error) {
	var s PDStoreInfo
	err := n.PDGetJSON(ctx, fmt.Sprintf("/store/%d", id), &s)
	return s, err
}
