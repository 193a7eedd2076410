package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	flaredbv1 "github.com/centra-cloud/centra/gen/centra/flaredb/v1"
	"github.com/centra-cloud/centra/gen/centra/flaredb/v1/flaredbv1connect"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/gen/centra/pd/v1/pdv1connect"
)

// memNode is one in-process "node" serving PD's read methods and a
// KVService with a single region on itself, enough to run the flaredb
// commands end to end (the real cluster is tested in e2e).
type memNode struct {
	pdv1connect.UnimplementedPDServiceHandler
	flaredbv1connect.UnimplementedKVServiceHandler
	srv *httptest.Server

	mu   sync.Mutex
	data map[string]map[string][]byte // namespace -> key -> value
}

func newMemNode(t *testing.T) *memNode {
	n := &memNode{data: map[string]map[string][]byte{}}
	mux := http.NewServeMux()
	mux.Handle(pdv1connect.NewPDServiceHandler(n))
	mux.Handle(flaredbv1connect.NewKVServiceHandler(n))
	n.srv = httptest.NewUnstartedServer(mux)
	n.srv.Config.Protocols = new(http.Protocols)
	n.srv.Config.Protocols.SetHTTP1(true)
	n.srv.Config.Protocols.SetUnencryptedHTTP2(true)
	n.srv.Start()
	t.Cleanup(n.srv.Close)
	return n
}

func (n *memNode) region() *metav1.Region {
	return &metav1.Region{Id: 2, RegionEpoch: &metav1.RegionEpoch{ConfVer: 1, Version: 1}, Peers: []*metav1.Peer{{Id: 3, StoreId: 1}}}
}

func (n *memNode) GetRegion(context.Context, *connect.Request[pdv1.GetRegionRequest]) (*connect.Response[pdv1.GetRegionResponse], error) {
	r := n.region()
	return connect.NewResponse(&pdv1.GetRegionResponse{Region: r, Leader: r.Peers[0]}), nil
}

func (n *memNode) ScanRegions(context.Context, *connect.Request[pdv1.ScanRegionsRequest]) (*connect.Response[pdv1.ScanRegionsResponse], error) {
	r := n.region()
	return connect.NewResponse(&pdv1.ScanRegionsResponse{Regions: []*pdv1.RegionWithLeader{{Region: r, Leader: r.Peers[0]}}}), nil
}

func (n *memNode) store() *metav1.Store {
	return &metav1.Store{Id: 1, Address: n.srv.Listener.Addr().String()}
}

func (n *memNode) GetStore(context.Context, *connect.Request[pdv1.GetStoreRequest]) (*connect.Response[pdv1.GetStoreResponse], error) {
	return connect.NewResponse(&pdv1.GetStoreResponse{Store: n.store()}), nil
}

func (n *memNode) GetAllStores(context.Context, *connect.Request[pdv1.GetAllStoresRequest]) (*connect.Response[pdv1.GetAllStoresResponse], error) {
	return connect.NewResponse(&pdv1.GetAllStoresResponse{Stores: []*pdv1.StoreInfo{{Store: n.store()}}}), nil
}

func (n *memNode) ns(rctx *flaredbv1.Context) map[string][]byte {
	ns := rctx.GetNamespace()
	if n.data[ns] == nil {
		n.data[ns] = map[string][]byte{}
	}
	return n.data[ns]
}

func (n *memNode) Get(_ context.Context, req *connect.Request[flaredbv1.GetRequest]) (*connect.Response[flaredbv1.GetResponse], error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	v, ok := n.ns(req.Msg.Context)[string(req.Msg.Key)]
	return connect.NewResponse(&flaredbv1.GetResponse{Value: v, NotFound: !ok}), nil
}

func (n *memNode) Put(_ context.Context, req *connect.Request[flaredbv1.PutRequest]) (*connect.Response[flaredbv1.PutResponse], error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ns(req.Msg.Context)[string(req.Msg.Key)] = req.Msg.Value
	return connect.NewResponse(&flaredbv1.PutResponse{}), nil
}

func (n *memNode) Delete(_ context.Context, req *connect.Request[flaredbv1.DeleteRequest]) (*connect.Response[flaredbv1.DeleteResponse], error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.ns(req.Msg.Context), string(req.Msg.Key))
	return connect.NewResponse(&flaredbv1.DeleteResponse{}), nil
}

func (n *memNode) keys(rctx *flaredbv1.Context, start, end []byte) []string {
	var out []string
	for k := range n.ns(rctx) {
		if k >= string(start) && (len(end) == 0 || k < string(end)) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (n *memNode) DeleteRange(_ context.Context, req *connect.Request[flaredbv1.DeleteRangeRequest]) (*connect.Response[flaredbv1.DeleteRangeResponse], error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, k := range n.keys(req.Msg.Context, req.Msg.StartKey, req.Msg.EndKey) {
		delete(n.ns(req.Msg.Context), k)
	}
	return connect.NewResponse(&flaredbv1.DeleteRangeResponse{}), nil
}

func (n *memNode) Scan(_ context.Context, req *connect.Request[flaredbv1.ScanRequest], stream *connect.ServerStream[flaredbv1.ScanResponse]) error {
	n.mu.Lock()
	m := req.Msg
	ks := n.keys(m.Context, m.StartKey, m.EndKey)
	if m.Reverse {
		slices.Reverse(ks)
	}
	if m.Limit > 0 && len(ks) > int(m.Limit) {
		ks = ks[:m.Limit]
	}
	resp := &flaredbv1.ScanResponse{}
	for _, k := range ks {
		p := &flaredbv1.KvPair{Key: []byte(k)}
		if !m.KeyOnly {
			p.Value = n.ns(m.Context)[k]
		}
		resp.Pairs = append(resp.Pairs, p)
	}
	n.mu.Unlock()
	return stream.Send(resp)
}

// run runs a command line and returns stdout, stderr and the exit code.
func run(args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := Run(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestFlareDBClientRunbookLines runs the runbook's command lines verbatim
// (through the flaredb-client program name) against an in-process node.
func TestFlareDBClientRunbookLines(t *testing.T) {
	n := newMemNode(t)
	ep := n.srv.URL
	if out, errOut, code := run("flaredb-client", "--endpoint", ep, "put", "test-key", "test-value"); out != "OK\n" || code != 0 {
		t.Fatalf("put: %q %q %d", out, errOut, code)
	}
	if out, errOut, code := run("flaredb-client", "--endpoint", ep, "get", "test-key"); out != "test-value\n" || code != 0 {
		t.Fatalf("get: %q %q %d", out, errOut, code)
	}
	out, errOut, code := run("flaredb-client", "--endpoint", ep, "get", "missing-key", "-n", "ns1")
	if code == 0 || out != "" || !strings.Contains(errOut, `"missing-key"`) || !strings.Contains(errOut, `"ns1"`) {
		t.Fatalf("get of a missing key: %q %q %d", out, errOut, code)
	}
	// Namespaces are separate.
	if _, _, code := run("flaredb-client", "--endpoint", ep, "get", "test-key", "--namespace", "other"); code == 0 {
		t.Fatal("test-key found in namespace other")
	}
}

func TestFlareDBScanAndDelete(t *testing.T) {
	n := newMemNode(t)
	ep := n.srv.URL
	for _, kv := range [][2]string{{"a1", "x"}, {"a2", "y"}, {"b1", "z"}} {
		if _, errOut, code := run("centra", "flaredb", "put", kv[0], kv[1], "--endpoint", ep); code != 0 {
			t.Fatalf("put: %s", errOut)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"scan"}, "a1\tx\na2\ty\nb1\tz\n"},
		{[]string{"scan", "a2"}, "a2\ty\nb1\tz\n"},
		{[]string{"scan", "a1", "b1"}, "a1\tx\na2\ty\n"},
		{[]string{"scan", "--prefix", "a"}, "a1\tx\na2\ty\n"},
		{[]string{"scan", "--reverse", "--limit", "2"}, "b1\tz\na2\ty\n"},
		{[]string{"scan", "--keys-only"}, "a1\na2\nb1\n"},
	} {
		out, errOut, code := run(append([]string{"flaredb-client", "--endpoint", ep}, tc.args...)...)
		if code != 0 || out != tc.want {
			t.Errorf("%v: %q %q %d, want %q", tc.args, out, errOut, code, tc.want)
		}
	}
	out, _, code := run("flaredb-client", "--endpoint", ep, "scan", "-o", "json", "--limit", "1")
	var js struct {
		Namespace string
		Count     int
		Pairs     []struct{ Key, Value []byte }
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil || code != 0 || js.Count != 1 || string(js.Pairs[0].Key) != "a1" || js.Namespace != "default" {
		t.Fatalf("scan -o json: %q (%v)", out, err)
	}
	if out, errOut, code := run("flaredb-client", "--endpoint", ep, "delete", "--prefix", "a"); code != 0 || out != "OK\n" {
		t.Fatalf("delete --prefix: %q %q", out, errOut)
	}
	if out, errOut, code := run("flaredb-client", "--endpoint", ep, "delete", "b1"); code != 0 || out != "OK\n" {
		t.Fatalf("delete: %q %q", out, errOut)
	}
	if out, _, _ := run("flaredb-client", "--endpoint", ep, "scan"); out != "" {
		t.Fatalf("left after deletes: %q", out)
	}
	out, _, code = run("flaredb-client", "--endpoint", ep, "get", "b1", "-o", "json")
	if code != 0 || !strings.Contains(out, `"found":false`) {
		t.Fatalf("get -o json of a missing key: %q %d", out, code)
	}
}

func TestFlareDBCommandLines(t *testing.T) {
	app := NewApp(&bytes.Buffer{}, &bytes.Buffer{})
	for _, tc := range []struct{ in, want string }{
		{"flaredb-client --endpoint http://10.0.0.1:2379 put test-key test-value", "centra flaredb put --endpoint http://10.0.0.1:2379 -- test-key test-value"},
		{"flaredb-client --endpoint http://10.0.0.1:2379 get test-key", "centra flaredb get --endpoint http://10.0.0.1:2379 -- test-key"},
		{"flaredb-client get -n metrics k --endpoint h:1", "centra flaredb get -n metrics --endpoint h:1 -- k"},
		{"flaredb-client scan a z --limit 5 --reverse", "centra flaredb scan --limit 5 --reverse -- a z"},
		{"flaredb-client cluster-status --endpoint h:1", "centra flaredb cluster-status --endpoint h:1"},
	} {
		got := strings.Join(interleaveFlags(app, multiCall(strings.Fields(tc.in))), " ")
		if got != tc.want {
			t.Errorf("%q -> %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFlareDBArgumentErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"put", "k"}, "put: want KEY VALUE, got 1 arguments"},
		{[]string{"get"}, "get: want KEY, got 0 arguments"},
		{[]string{"get", "a", "b"}, "get: want KEY, got 2 arguments"},
		{[]string{"delete"}, "delete: want KEY [END], got 0 arguments"},
		{[]string{"delete", "a", "b", "--prefix"}, "--prefix takes no END"},
		{[]string{"scan", "a", "b", "c"}, "scan: want [START [END]], got 3 arguments"},
		{[]string{"scan", "--limit", "-1"}, "--limit -1"},
		{[]string{"get", "k", "-o", "yaml"}, `--output "yaml"`},
	} {
		_, errOut, code := run(append([]string{"flaredb-client", "--endpoint", "127.0.0.1:1"}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: stderr %q (exit %d), want one line with %q", tc.args, errOut, code, tc.want)
		}
	}
}

func TestNamespacePrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a", "b"}, {"a\xff", "b"}, {"\xff\xff", ""}, {"", ""},
	} {
		if got := string(namespacePrefixEnd([]byte(tc.in))); got != tc.want {
			t.Errorf("namespacePrefixEnd(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
