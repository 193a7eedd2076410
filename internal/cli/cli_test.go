package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
)

func TestInterleaveFlags(t *testing.T) {
	app := NewApp(&bytes.Buffer{}, &bytes.Buffer{})
	for _, tc := range []struct{ in, want string }{
		{"centra kv put foo bar --endpoint h:1", "centra kv put --endpoint h:1 -- foo bar"},
		{"centra kv get --endpoint=h:1 foo --prefix -o json", "centra kv get --endpoint=h:1 --prefix -o json -- foo"},
		{"centra kv put --endpoint h:1 -- -neg val", "centra kv put --endpoint h:1 -- -neg val"},
		{"centra serve --config f", "centra serve --config f"},
		{"centra kv", "centra kv"},
		{"centra cluster --endpoint h:1 member-list", "centra cluster member-list --endpoint h:1"},
		{"centra --help", "centra --help"},
	} {
		got := strings.Join(interleaveFlags(app, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("%q -> %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMultiCall(t *testing.T) {
	got := multiCall([]string{"/usr/bin/chainfire-server", "--config", "c.toml"})
	if !slices.Equal(got, []string{"centra", "serve", "--config", "c.toml"}) {
		t.Errorf("chainfire-server: %q", got)
	}
	if got := multiCall([]string{"centra", "version"}); !slices.Equal(got, []string{"centra", "version"}) {
		t.Errorf("centra: %q", got)
	}
}

func TestParseTxn(t *testing.T) {
	req, err := parseTxn(strings.NewReader(`mod("key1") > "0"
value("key2") = "a b"

put key1 "overwrote key1"

put key1 "created-key1"
del key2 key3
get key4
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Compare) != 2 || req.Compare[0].Target != etcdserverpb.Compare_MOD || req.Compare[0].GetModRevision() != 0 ||
		req.Compare[0].Result != etcdserverpb.Compare_GREATER || string(req.Compare[1].GetValue()) != "a b" {
		t.Fatalf("compares: %v", req.Compare)
	}
	if len(req.Success) != 1 || string(req.Success[0].GetRequestPut().Value) != "overwrote key1" {
		t.Fatalf("success: %v", req.Success)
	}
	if len(req.Failure) != 3 || string(req.Failure[1].GetRequestDeleteRange().RangeEnd) != "key3" || string(req.Failure[2].GetRequestRange().Key) != "key4" {
		t.Fatalf("failure: %v", req.Failure)
	}
	for _, bad := range []string{`value("k") ~ "v"`, `version("k") = "x"`, "\n\nfrobnicate k"} {
		if _, err := parseTxn(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "txn line") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

func TestChainfireClientCommandLines(t *testing.T) {
	app := NewApp(&bytes.Buffer{}, &bytes.Buffer{})
	for _, tc := range []struct{ in, want string }{
		{"chainfire-client --endpoint http://10.0.0.1:2379 member-list", "centra cluster member-list --endpoint http://10.0.0.1:2379"},
		{"chainfire-client --endpoint http://10.0.0.1:2379 status", "centra cluster status --endpoint http://10.0.0.1:2379"},
		{"chainfire-client --endpoint http://10.0.0.1:2379 put k v", "centra kv put --endpoint http://10.0.0.1:2379 -- k v"},
		// The runbook's corruption section.
		{"rocksdb_ldb --db=/var/lib/chainfire checkconsistency", "centra debug check --data-dir /var/lib/chainfire"},
		{"rocksdb_ldb --db=/var/lib/chainfire repair", "centra debug repair --data-dir /var/lib/chainfire --yes"},
		{"rocksdb_ldb --db /var/lib/chainfire checkconsistency", "centra debug check --data-dir /var/lib/chainfire"},
	} {
		got := strings.Join(interleaveFlags(app, multiCall(strings.Fields(tc.in))), " ")
		if got != tc.want {
			t.Errorf("%q -> %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestConfigCheckRole: `centra config check` names the role it chose and
// why, first (here inferred from a flaredb.toml that also sets
// [network] raft_addr), and refuses an ambiguous file naming [node] role.
func TestConfigCheckRole(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "flaredb.toml")
	if err := os.WriteFile(store, []byte("store_id = 4\naddr = \"127.0.0.1:2479\"\ndata_dir = \""+dir+"\"\npd_addr = \"127.0.0.1:2379\"\n[network]\nraft_addr = \"127.0.0.1:2480\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := Run([]string{"centra", "config", "check", "--config", store}, &out, &errOut); code != 0 {
		t.Fatalf("config check: exit %d: %s", code, errOut.String())
	}
	first, _, _ := strings.Cut(out.String(), "\n")
	if !strings.HasPrefix(first, `# node.role = "store" (set by inference: the flaredb.toml keys`) {
		t.Errorf("first line %q; want the inferred store role and why", first)
	}
	mixed := filepath.Join(dir, "mixed.toml")
	if err := os.WriteFile(mixed, []byte("store_id = 4\npd_addr = \"127.0.0.1:2379\"\n[cluster]\nbootstrap = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if code := Run([]string{"centra", "config", "check", "--config", mixed}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "set [node] role") {
		t.Errorf("ambiguous file: exit %d, stderr %q; want a refusal naming [node] role", code, errOut.String())
	}
}

// TestSnapshotRestoreMemberFlags: a multi-member restore refuses a --name
// that is not in --initial-members, a bad member entry, and --name or
// --cluster-id without --initial-members, before touching the data
// directory.
func TestSnapshotRestoreMemberFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "4", "--initial-members", "1=10.0.0.1:2380,2=10.0.0.2:2380"}, `--name "4" is not an ID listed in --initial-members`},
		{[]string{"--name", "1", "--initial-members", "1=10.0.0.1"}, "--initial-members"},
		{[]string{"--name", "1"}, "--name and --cluster-id need --initial-members"},
		{[]string{"--cluster-id", "9"}, "--name and --cluster-id need --initial-members"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"centra", "snapshot", "restore", "missing.db", "--data-dir", dir}, tc.args...)
		if code := Run(args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("a refused restore wrote into the data directory: %v", entries)
	}
}
