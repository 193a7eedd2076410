package cli

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakePD answers PD API paths with canned bodies and records requests.
type fakePD struct {
	mu    sync.Mutex
	calls []string // "METHOD PATH?QUERY BODY"
}

var fakePDAnswers = map[string]string{
	"GET /pd/api/v1/stores": `{"count":2,"stores":[
 {"id":1,"address":"10.0.0.1:2379","state":"Up","capacity":107374182400,"available":53687091200,
  "store":{"id":1,"labels":[{"key":"zone","value":"a"}]},"status":{"leader_count":3,"region_count":5,"leader_score":3,"region_score":40}},
 {"id":4,"address":"10.0.0.4:2379","state":"Offline","capacity":0,"available":0,"store":{"id":4},"status":{"pending_peer_count":2}}]}`,
	"GET /pd/api/v1/regions": `{"count":2,"regions":[
 {"id":2,"start_key":"","end_key":"6B","epoch":{"conf_ver":5,"version":2},"peers":[{"id":3,"store_id":1,"role_name":"Voter"},{"id":7,"store_id":2,"role_name":"Voter"},{"id":9,"store_id":4,"role":1,"role_name":"Learner","is_learner":true}],
  "leader":{"id":3,"store_id":1},"pending_peers":[{"id":9,"store_id":4}],"approximate_size":12},
 {"id":5,"start_key":"6B","end_key":"","epoch":{"conf_ver":3,"version":2},"peers":[{"id":6,"store_id":1,"role_name":"Voter"}],"leader":{"id":6,"store_id":1},"approximate_size":1}]}`,
	"GET /pd/api/v1/config/replicate": `{"max-replicas":3,"location-labels":""}`,
	"GET /pd/api/v1/stores/limit":     `{"1":{"add-peer":15,"remove-peer":15},"10":{"add-peer":30,"remove-peer":15}}`,
	"GET /pd/api/v1/operators":        `["balance-region {mv peer: store [1] to [4]} (kind:region, ...)"]`,
	"GET /pd/api/v1/schedulers":       `["balance-leader-scheduler","balance-region-scheduler"]`,
}

func (f *fakePD) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(b)))
	f.mu.Unlock()
	if body, ok := fakePDAnswers[r.Method+" "+r.URL.Path]; ok {
		_, _ = io.WriteString(w, body)
		return
	}
	if r.Method == "GET" {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `"pd: store not found: store 9"`)
		return
	}
	_, _ = io.WriteString(w, `"done."`)
}

func TestPDCommands(t *testing.T) {
	f := &fakePD{}
	srv := httptest.NewUnstartedServer(f)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()
	for _, tc := range []struct {
		args     string
		wantCall string // the last request
		wantOut  []string
		wantErr  string
	}{
		{args: "pd store", wantCall: "GET /pd/api/v1/stores?state=0&state=1&state=2",
			wantOut: []string{"ID  ADDRESS", "1   10.0.0.1:2379  Up       3        5        3             40            0        100.0GiB  50.0GiB    zone=a", "4   10.0.0.4:2379  Offline"}},
		{args: "pd store delete 4 --force", wantCall: "DELETE /pd/api/v1/store/4?force=true", wantOut: []string{"done."}},
		{args: "pd store cancel-delete 4", wantCall: "POST /pd/api/v1/store/4/state?state=Up"},
		{args: "pd store limit", wantCall: "GET /pd/api/v1/stores/limit", wantOut: []string{"1      15            15", "10     30"}},
		{args: "pd store limit all 20 add-peer", wantCall: `POST /pd/api/v1/stores/limit {"rate":20,"type":"add-peer"}`},
		{args: "pd store limit 3 5", wantCall: `POST /pd/api/v1/store/3/limit {"rate":5}`},
		{args: "pd store weight 3 2 1.5", wantCall: `POST /pd/api/v1/store/3/weight {"leader":2,"region":1.5}`},
		{args: "pd store 9", wantCall: "GET /pd/api/v1/store/9", wantErr: "404 Not Found: pd: store not found: store 9"},
		{args: "pd region", wantCall: "GET /pd/api/v1/regions", wantOut: []string{"2   ", "5/2", "1,2,4(L)", "12"}},
		{args: "pd region check miss-peer", wantCall: "GET /pd/api/v1/regions", wantOut: []string{"5 "}},
		{args: "pd region check pending-peer -o json", wantCall: "GET /pd/api/v1/regions", wantOut: []string{`{"count":1,"regions":[{"id":2,`}},
		{args: "pd region check lost-peer", wantErr: "want pending-peer, down-peer, miss-peer"},
		{args: "pd operator show region", wantCall: "GET /pd/api/v1/operators?kind=region", wantOut: []string{"balance-region {mv peer: store [1] to [4]}"}},
		{args: "pd operator add transfer-peer 2 1 4", wantCall: `POST /pd/api/v1/operators {"from_store_id":1,"name":"transfer-peer","region_id":2,"to_store_id":4}`},
		{args: "pd operator add transfer-region 2 1 2 4", wantCall: `POST /pd/api/v1/operators {"name":"transfer-region","region_id":2,"to_store_ids":[1,2,4]}`},
		{args: "pd operator add transfer-leader 2 x", wantErr: `id "x": want an unsigned integer`},
		{args: "pd operator add scatter-region 2", wantCall: `POST /pd/api/v1/operators {"name":"scatter-region","region_id":2}`},
		{args: "pd operator add scatter-region 2 4", wantErr: "add scatter-region: want REGION"},
		{args: "pd operator add transfer-leader 2", wantErr: "add: want NAME REGION ARGS"},
		{args: "pd operator add split-region 2 --policy usekey --keys 6B30", wantCall: `POST /pd/api/v1/operators {"keys":["6B30"],"name":"split-region","policy":"usekey","region_id":2}`},
		{args: "pd operator remove 2", wantCall: "DELETE /pd/api/v1/operators/2"},
		{args: "pd scheduler show --status paused", wantCall: "GET /pd/api/v1/schedulers?status=paused", wantOut: []string{"balance-leader-scheduler\nbalance-region-scheduler"}},
		{args: "pd scheduler add evict-leader-scheduler 1", wantCall: `POST /pd/api/v1/schedulers {"name":"evict-leader-scheduler","store_id":1}`},
		{args: "pd scheduler remove evict-leader-scheduler-1", wantCall: "DELETE /pd/api/v1/schedulers/evict-leader-scheduler-1"},
		{args: "pd scheduler pause balance-region-scheduler 60", wantCall: `POST /pd/api/v1/schedulers/balance-region-scheduler {"delay":60}`},
		{args: "pd scheduler resume balance-region-scheduler", wantCall: `POST /pd/api/v1/schedulers/balance-region-scheduler {"delay":0}`},
		{args: "pd config set max-snapshot-count 3", wantCall: `POST /pd/api/v1/config/schedule {"max-snapshot-count":3}`},
		{args: "pd config set max-store-down-time 30s", wantCall: `POST /pd/api/v1/config/schedule {"max-store-down-time":"30s"}`},
		{args: "pd config set max-replicas 5", wantCall: `POST /pd/api/v1/config/replicate {"max-replicas":5}`},
	} {
		t.Run(tc.args, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"centra"}, strings.Fields(tc.args)...)
			args = append(args, "--endpoint", srv.URL)
			code := Run(args, &out, &errOut)
			if tc.wantErr != "" {
				if code == 0 || !strings.Contains(errOut.String(), tc.wantErr) {
					t.Fatalf("exit %d, stderr %q, want an error with %q", code, errOut.String(), tc.wantErr)
				}
			} else if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			f.mu.Lock()
			last := ""
			if len(f.calls) > 0 {
				last = f.calls[len(f.calls)-1]
			}
			f.mu.Unlock()
			if tc.wantCall != "" && last != tc.wantCall {
				t.Fatalf("last request %q, want %q", last, tc.wantCall)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Fatalf("output:\n%s\nwant %q", out.String(), w)
				}
			}
		})
	}
}
