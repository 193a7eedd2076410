package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// plain drops the recorded sources so configs compare by value.
func plain(c Config) Config {
	c.sources = nil
	return c
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, opts LoadOptions) Config {
	t.Helper()
	c, err := Load(opts)
	if err != nil {
		t.Fatalf("Load(%+v): %v", opts, err)
	}
	return c
}

// wantErrs checks that err joins exactly len(want) errors, each containing
// the matching substrings.
func wantErrs(t *testing.T, err error, want ...[]string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %d", len(want))
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, subs := range want {
		for _, s := range subs {
			if !strings.Contains(errs[i].Error(), s) {
				t.Errorf("error %d = %q, want it to contain %q", i, errs[i], s)
			}
		}
	}
}

func TestLoadRunbookFiles(t *testing.T) {
	chainfireTLS := TLS{
		CertFile:          "/etc/centra-cloud/certs/chainfire-node-4.crt",
		KeyFile:           "/etc/centra-cloud/certs/chainfire-node-4.key",
		CAFile:            "/etc/centra-cloud/certs/ca.crt",
		RequireClientCert: true,
	}
	flaredbTLS := TLS{
		CertFile:          "/etc/centra-cloud/certs/flaredb-node-4.crt",
		KeyFile:           "/etc/centra-cloud/certs/flaredb-node-4.key",
		CAFile:            "/etc/centra-cloud/certs/ca.crt",
		RequireClientCert: true,
	}
	missingCerts := func(file string) [][]string {
		return [][]string{
			{"network.tls.cert_file", file, "chainfire-node-4.crt", "no such file", "centra certs init"},
			{"network.tls.key_file", file},
			{"network.tls.ca_file", file},
		}
	}
	tests := []struct {
		file      string
		want      func(c *Config)
		validate  [][]string // expected Validate errors
		warnings  int
		roleStore bool
	}{
		{
			file: "chainfire.toml",
			want: func(c *Config) {
				c.Node = Node{ID: 4, Name: "chainfire-node-4", Role: "control_plane"}
				c.Cluster = Cluster{ID: 1, Bootstrap: false}
				c.Network = Network{APIAddr: "0.0.0.0:2379", RaftAddr: "0.0.0.0:2380", GossipAddr: "0.0.0.0:2381", TLS: chainfireTLS}
				c.Storage.DataDir = "/var/lib/chainfire"
				c.Raft.Role = "voter"
			},
			validate: missingCerts("chainfire.toml"),
		},
		{
			file: "flaredb.toml",
			want: func(c *Config) {
				c.Node.Role = "store"
				c.StoreID = 4
				c.Addr, c.Network.APIAddr = "0.0.0.0:2379", "0.0.0.0:2379"
				c.Network.RaftAddr = "0.0.0.0:2380" // a store-only node: API port + 1
				c.DataDir, c.Storage.DataDir = "/var/lib/flaredb", "/var/lib/flaredb"
				c.PDAddr = []string{"PD_SERVER_IP:2379"}
				c.LogLevel = "info"
				c.TLS, c.Network.TLS = flaredbTLS, flaredbTLS
				c.NamespaceModes = map[string]string{"default": "eventual"}
			},
			validate: [][]string{
				{"network.tls.cert_file", "flaredb.toml", "flaredb-node-4.crt"},
				{"network.tls.key_file", "flaredb.toml"},
				{"network.tls.ca_file", "flaredb.toml"},
			},
		},
		{
			file: "ts-high-latency-storage.toml",
			want: func(c *Config) {
				c.Storage.WriteBufferSize = 134217728
				c.Storage.BlockCacheSize = 536870912
				c.Storage.UseDirectIOForFlushAndCompaction = true
			},
			warnings: 1,
		},
		{
			file: "ts-cpu-raft-tick.toml",
			want: func(c *Config) { c.Raft.TickIntervalMs = 200 },
		},
		{
			file: "ts-flaredb-throttle-compaction.toml",
			want: func(c *Config) {
				c.Storage.MaxBackgroundCompactions = 2
				c.Storage.MaxBackgroundFlushes = 1
			},
			warnings: 1,
		},
		{
			file: "ts-chainfire-write-heavy.toml",
			want: func(c *Config) {
				c.Storage.WriteBufferSize = 134217728
				c.Storage.MaxWriteBufferNumber = 4
				c.Storage.BlockCacheSize = 1073741824
				c.Storage.Level0FileNumCompactionTrigger = 8
			},
		},
		{
			file: "ts-chainfire-read-heavy.toml",
			want: func(c *Config) {
				c.Storage.BlockCacheSize = 2147483648
				c.Storage.BloomFilterBitsPerKey = 10
				c.Storage.MaxOpenFiles = 10000
			},
		},
		{
			file: "ts-chainfire-low-latency.toml",
			want: func(c *Config) {
				c.Raft.TickIntervalMs = 50
				c.Storage.UseDirectIOForFlushAndCompaction = true
			},
			warnings: 1,
		},
		{
			file: "ts-flaredb-high-ingestion.toml",
			want: func(c *Config) {
				c.Storage.WriteBufferSize = 268435456
				c.Storage.MaxWriteBufferNumber = 6
				c.Storage.MaxBackgroundCompactions = 4
				c.Storage.MaxBackgroundFlushes = 2
			},
		},
		{
			file: "ts-flaredb-large-query.toml",
			want: func(c *Config) {
				c.Storage.BlockCacheSize = 4294967296
				c.Storage.MaxOpenFiles = 20000
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			got := mustLoad(t, LoadOptions{File: path})
			want := Default()
			tt.want(&want)
			if !reflect.DeepEqual(plain(got), want) {
				t.Errorf("Load(%s):\n got %+v\nwant %+v", tt.file, plain(got), want)
			}
			err := got.Validate()
			if len(tt.validate) == 0 && err != nil {
				t.Errorf("Validate: %v", err)
			} else if len(tt.validate) > 0 {
				wantErrs(t, err, tt.validate...)
			}
			if w := got.Storage.Warnings(); len(w) != tt.warnings {
				t.Errorf("Warnings() = %q, want %d", w, tt.warnings)
			}
		})
	}
}

// TestRunbookValidWithCerts loads chainfire.toml verbatim with the TLS
// paths overridden by flags, as an operator would in a test environment.
func TestRunbookValidWithCerts(t *testing.T) {
	dir := t.TempDir()
	flags := map[string]any{}
	for _, f := range []string{"cert_file", "key_file", "ca_file"} {
		p := filepath.Join(dir, f+".pem")
		if err := os.WriteFile(p, []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
		flags["network.tls."+f] = p
	}
	c := mustLoad(t, LoadOptions{File: "testdata/chainfire.toml", Flags: flags})
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got, want := c.Source("network.tls.cert_file"), "flag --network-tls-cert-file"; got != want {
		t.Errorf("Source(cert_file) = %q, want %q", got, want)
	}
	if got, want := c.Source("node.id"), "file testdata/chainfire.toml"; got != want {
		t.Errorf("Source(node.id) = %q, want %q", got, want)
	}
	if got := c.Source("raft.tick_interval_ms"); got != "default" {
		t.Errorf("Source(raft.tick_interval_ms) = %q, want default", got)
	}
}

func TestDefaultIsValid(t *testing.T) {
	c := mustLoad(t, LoadOptions{})
	if !reflect.DeepEqual(plain(c), Default()) {
		t.Errorf("Load() = %+v, want Default() %+v", plain(c), Default())
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if !c.HasRole(RoleControlPlane) || !c.HasRole(RoleStore) {
		t.Errorf("default roles = %q, want both", c.Node.Role)
	}
	if got, want := c.StateDir(), filepath.Join("centra-data", "state"); got != want {
		t.Errorf("StateDir() = %q, want %q", got, want)
	}
	if got, want := c.RaftDir(), filepath.Join("centra-data", "raft"); got != want {
		t.Errorf("RaftDir() = %q, want %q", got, want)
	}
	members, err := c.BootstrapMembers()
	if err != nil || !reflect.DeepEqual(members, []Member{{ID: 1, Addr: "127.0.0.1:2380"}}) {
		t.Errorf("BootstrapMembers() = %v, %v; want this node alone", members, err)
	}
	if c.EffectiveStoreID() != 1 {
		t.Errorf("EffectiveStoreID() = %d, want node.id 1", c.EffectiveStoreID())
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "c.toml", "[node]\nid = 2\n[raft]\ntick_interval_ms = 200\n")
	tests := []struct {
		name       string
		file       string
		env        []string
		flags      map[string]any
		wantID     uint64
		wantSource string
	}{
		{"default", "", nil, nil, 1, "default"},
		{"file", file, nil, nil, 2, "file " + file},
		{"env over file", file, []string{"CENTRA_NODE_ID=3"}, nil, 3, "environment variable CENTRA_NODE_ID"},
		{"flag over env", file, []string{"CENTRA_NODE_ID=3"}, map[string]any{"node.id": uint64(4)}, 4, "flag --node-id"},
		{"flag by flag name", file, nil, map[string]any{"node-id": "5"}, 5, "flag --node-id"},
		{"file from CENTRA_CONFIG", "", []string{"CENTRA_CONFIG=" + file}, nil, 2, "file " + file},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, LoadOptions{File: tt.file, Env: tt.env, Flags: tt.flags})
			if c.Node.ID != tt.wantID {
				t.Errorf("node.id = %d, want %d", c.Node.ID, tt.wantID)
			}
			if got := c.Source("node.id"); got != tt.wantSource {
				t.Errorf("Source(node.id) = %q, want %q", got, tt.wantSource)
			}
			if want := "centra-" + string(rune('0'+tt.wantID)); c.Node.Name != want {
				t.Errorf("node.name = %q, want %q (derived from node.id)", c.Node.Name, want)
			}
		})
	}
	// Keys the higher layers leave alone keep the file's value.
	c := mustLoad(t, LoadOptions{File: file, Env: []string{"CENTRA_NODE_ID=3"}})
	if c.Raft.TickIntervalMs != 200 {
		t.Errorf("raft.tick_interval_ms = %d, want the file's 200", c.Raft.TickIntervalMs)
	}
}

func TestTextForms(t *testing.T) {
	c := mustLoad(t, LoadOptions{
		Env: []string{
			"CENTRA_CLUSTER_INITIAL_MEMBERS=1=10.0.0.1:2380, 2=10.0.0.2:2380",
			"CENTRA_CLUSTER_BOOTSTRAP=false",
			"CENTRA_NAMESPACE_MODES=default=strong,metrics=eventual",
			"CENTRA_STORAGE_MAX_OPEN_FILES=2000",
			"HOME=/root",
		},
		Flags: map[string]any{
			"pd_addr":                         []string{"a:2379", "b:2379"},
			"peers":                           []string{"2=10.0.0.2:2380", "3=10.0.0.3:2380"},
			"network-tls-require-client-cert": true,
			"storage.block_cache_size":        1 << 30,
		},
	})
	if want := []string{"1=10.0.0.1:2380", "2=10.0.0.2:2380"}; !reflect.DeepEqual(c.Cluster.InitialMembers, want) {
		t.Errorf("initial_members = %q, want %q", c.Cluster.InitialMembers, want)
	}
	if c.Cluster.Bootstrap {
		t.Error("cluster.bootstrap = true, want false from the environment")
	}
	if want := map[string]string{"default": "strong", "metrics": "eventual"}; !reflect.DeepEqual(c.NamespaceModes, want) {
		t.Errorf("namespace_modes = %v, want %v", c.NamespaceModes, want)
	}
	if c.Storage.MaxOpenFiles != 2000 || c.Storage.BlockCacheSize != 1<<30 {
		t.Errorf("storage = %+v", c.Storage)
	}
	if want := []string{"a:2379", "b:2379"}; !reflect.DeepEqual(c.PDAddr, want) {
		t.Errorf("pd_addr = %q, want %q", c.PDAddr, want)
	}
	if want := map[string]string{"2": "10.0.0.2:2380", "3": "10.0.0.3:2380"}; !reflect.DeepEqual(c.Peers, want) {
		t.Errorf("peers = %v, want %v", c.Peers, want)
	}
	if !c.Network.TLS.RequireClientCert {
		t.Error("network.tls.require_client_cert = false, want true from the flag")
	}
}

func TestPDAddrForms(t *testing.T) {
	for _, tt := range []struct{ toml, want string }{
		{`pd_addr = "a:2379"`, "a:2379"},
		{`pd_addr = "a:2379,b:2379"`, "a:2379 b:2379"},
		{`pd_addr = ["a:2379", "b:2379"]`, "a:2379 b:2379"},
	} {
		c := mustLoad(t, LoadOptions{File: writeFile(t, "f.toml", tt.toml)})
		if got := strings.Join(c.PDAddr, " "); got != tt.want {
			t.Errorf("%s: pd_addr = %q, want %q", tt.toml, got, tt.want)
		}
	}
}

func TestMapKeysWithDots(t *testing.T) {
	c := mustLoad(t, LoadOptions{File: writeFile(t, "f.toml", "store_id = 1\npd_addr = \"pd:2379\"\n[namespace_modes]\n\"a.b\" = \"strong\"\n[peers]\n2 = \"10.0.0.2:2380\"\n")})
	if want := map[string]string{"a.b": "strong"}; !reflect.DeepEqual(c.NamespaceModes, want) {
		t.Errorf("namespace_modes = %v, want %v", c.NamespaceModes, want)
	}
	if want := map[string]string{"2": "10.0.0.2:2380"}; !reflect.DeepEqual(c.Peers, want) {
		t.Errorf("peers = %v, want %v", c.Peers, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestAliases(t *testing.T) {
	file := writeFile(t, "flaredb.toml", "store_id = 1\naddr = \"0.0.0.0:3000\"\ndata_dir = \"/d\"\npd_addr = \"pd:2379\"\n")
	c := mustLoad(t, LoadOptions{File: file, Env: []string{"CENTRA_NETWORK_API_ADDR=127.0.0.1:4000"}})
	if c.Addr != "127.0.0.1:4000" || c.Network.APIAddr != "127.0.0.1:4000" {
		t.Errorf("addr = %q, network.api_addr = %q; want the environment's value in both", c.Addr, c.Network.APIAddr)
	}
	if c.Storage.DataDir != "/d" || c.EffectiveDataDir() != "/d" {
		t.Errorf("storage.data_dir = %q, want the file's data_dir", c.Storage.DataDir)
	}
	if got, want := c.Source("storage.data_dir"), "file "+file; got != want {
		t.Errorf("Source(storage.data_dir) = %q, want %q", got, want)
	}
	if c.Node.Role != RoleStore {
		t.Errorf("node.role = %q, want store for a flaredb.toml", c.Node.Role)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	conflict := writeFile(t, "both.toml", "addr = \"0.0.0.0:3000\"\n[node]\nrole = \"control_plane\"\n[network]\napi_addr = \"0.0.0.0:4000\"\n")
	c = mustLoad(t, LoadOptions{File: conflict})
	wantErrs(t, c.Validate(), []string{"addr", conflict, "differs from network.api_addr", "set only one"})
}

// TestRoleInference: flaredb.toml keys make a store whatever else the file
// holds (README advises [network] raft_addr for a store), unless it also
// holds [cluster]: then node.role must say what the node is.
func TestRoleInference(t *testing.T) {
	store := writeFile(t, "flaredb.toml", "store_id = 4\naddr = \"10.0.0.4:2379\"\npd_addr = \"10.0.0.1:2379\"\n[network]\nraft_addr = \"10.0.0.4:2380\"\n[raft]\ntick_interval_ms = 100\n")
	c := mustLoad(t, LoadOptions{File: store})
	if c.Node.Role != RoleStore || c.Network.RaftAddr != "10.0.0.4:2380" {
		t.Errorf("role %q, raft_addr %q; want store at 10.0.0.4:2380", c.Node.Role, c.Network.RaftAddr)
	}
	if src := c.Source("node.role"); !strings.Contains(src, "inference") || !strings.Contains(src, "pd_addr") || !strings.Contains(src, store) {
		t.Errorf("Source(node.role) = %q; want the inference, the keys and the file", src)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if out, err := c.TOML(); err != nil || !strings.Contains(string(out), "# (set by inference: the flaredb.toml keys") {
		t.Errorf("TOML should show why the role is store: %v\n%s", err, out)
	}
	// Explicit role wins, from the file or the environment.
	c = mustLoad(t, LoadOptions{File: store, Env: []string{"CENTRA_NODE_ROLE=control_plane,store"}})
	if c.Node.Role != "control_plane,store" {
		t.Errorf("role with CENTRA_NODE_ROLE: %q", c.Node.Role)
	}

	mixed := writeFile(t, "mixed.toml", "store_id = 4\npd_addr = \"10.0.0.1:2379\"\n[cluster]\nbootstrap = true\n")
	_, err := Load(LoadOptions{File: mixed})
	wantErrs(t, err, []string{"node.role", mixed, "store_id", "cluster.bootstrap", `set [node] role = "store"`})
	explicit := writeFile(t, "explicit.toml", "store_id = 4\npd_addr = \"10.0.0.1:2379\"\n[node]\nrole = \"control_plane,store\"\n[cluster]\nbootstrap = true\n")
	if c := mustLoad(t, LoadOptions{File: explicit}); c.Node.Role != "control_plane,store" {
		t.Errorf("explicit role: %q", c.Node.Role)
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name, toml string
		want       []string
	}{
		{"typo", "[storage]\nwrite_bufer_size = 1\n", []string{"storage.write_bufer_size", "unknown key", `did you mean "storage.write_buffer_size"?`}},
		{"wrong section", "[storage]\ntick_interval_ms = 50\n", []string{"storage.tick_interval_ms", `did you mean "raft.tick_interval_ms"?`}},
		{"wrong table", "[nodes]\nid = 1\n", []string{"nodes.id", `did you mean "node.id"?`}},
		{"nothing close", "[storage]\nzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz = 1\n", []string{"storage.zzzz", "unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "bad.toml", tt.toml)
			_, err := Load(LoadOptions{File: path})
			if !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("Load: %v, want ErrUnknownKey", err)
			}
			wantErrs(t, err, append(tt.want, "file "+path))
		})
	}

	_, err := Load(LoadOptions{Env: []string{"CENTRA_NODE_IDD=4", "CENTRA_CONFIG=", "OTHER_X=1"}})
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Load with CENTRA_NODE_IDD: %v, want ErrUnknownKey", err)
	}
	wantErrs(t, err, []string{"CENTRA_NODE_IDD", "unknown variable", `did you mean "CENTRA_NODE_ID"?`})

	_, err = Load(LoadOptions{Flags: map[string]any{"node.idd": 4}})
	wantErrs(t, err, []string{"node.idd", "unknown flag", `did you mean "node.id"?`})
}

func TestTypeErrors(t *testing.T) {
	tests := []struct {
		name, toml string
		want       []string
	}{
		{"string id", "[node]\nid = \"x\"\n", []string{"node.id", `got string "x"`, "expected a non-negative integer"}},
		{"quoted number", "[node]\nid = \"4\"\n", []string{"node.id", "remove the quotes"}},
		{"negative", "[node]\nid = -1\n", []string{"node.id", "got -1"}},
		{"float", "[raft]\nelection_ticks = 1.5\n", []string{"raft.election_ticks", "float 1.5"}},
		{"bool", "[cluster]\nbootstrap = \"yes\"\n", []string{"cluster.bootstrap", "expected a boolean"}},
		{"list element", "[cluster]\ninitial_members = [1]\n", []string{"cluster.initial_members", "element 0 is integer 1"}},
		{"string", "[network]\napi_addr = 2379\n", []string{"network.api_addr", "got integer 2379", "expected a string"}},
		{"section", "network = 5\n", []string{"network", "expected a table [network]"}},
		{"map value", "[namespace_modes]\ndefault = 1\n", []string{"namespace_modes", `entry "default" is integer 1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "bad.toml", tt.toml)
			_, err := Load(LoadOptions{File: path})
			if !errors.Is(err, ErrInvalidType) {
				t.Fatalf("Load: %v, want ErrInvalidType", err)
			}
			wantErrs(t, err, append(tt.want, "file "+path))
		})
	}

	_, err := Load(LoadOptions{Env: []string{"CENTRA_NODE_ID=abc", "CENTRA_CLUSTER_BOOTSTRAP=maybe"}})
	wantErrs(t, err,
		[]string{"cluster.bootstrap", "environment variable CENTRA_CLUSTER_BOOTSTRAP", `"maybe"`},
		[]string{"node.id", "environment variable CENTRA_NODE_ID", `cannot parse "abc"`})

	_, err = Load(LoadOptions{Flags: map[string]any{"namespace_modes": "default"}})
	wantErrs(t, err, []string{"namespace_modes", "flag --namespace-modes", "not name=value"})
}

func TestFileErrors(t *testing.T) {
	path := writeFile(t, "syntax.toml", "[node]\nid = = 4\n")
	_, err := Load(LoadOptions{File: path})
	if !errors.Is(err, ErrConfigFile) {
		t.Fatalf("Load: %v, want ErrConfigFile", err)
	}
	if !strings.Contains(err.Error(), path+":2:") || !strings.Contains(err.Error(), "fix the TOML syntax") {
		t.Errorf("error %q does not point at %s line 2", err, path)
	}

	missing := filepath.Join(t.TempDir(), "missing.toml")
	_, err = Load(LoadOptions{File: missing})
	if !errors.Is(err, ErrConfigFile) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v, want ErrConfigFile naming %s", err, missing)
	}
}

func TestKeys(t *testing.T) {
	flags, envs := map[string]bool{}, map[string]bool{}
	byName := map[string]KeyInfo{}
	for _, k := range Keys() {
		if k.Help == "" {
			t.Errorf("key %s has no help", k.Name)
		}
		if flags[k.Flag] || envs[k.Env] {
			t.Errorf("key %s: flag %s or env %s is not unique", k.Name, k.Flag, k.Env)
		}
		flags[k.Flag], envs[k.Env] = true, true
		byName[k.Name] = k
	}
	api := byName["network.api_addr"]
	if api.Flag != "network-api-addr" || api.Env != "CENTRA_NETWORK_API_ADDR" || api.Default != "127.0.0.1:2379" || api.Kind != KindString {
		t.Errorf("network.api_addr = %+v", api)
	}
	if k := byName["storage.write_buffer_size"]; k.Default != "67108864" || k.Kind != KindUint {
		t.Errorf("storage.write_buffer_size = %+v", k)
	}
	if k := byName["pd_addr"]; k.Kind != KindList || k.Env != "CENTRA_PD_ADDR" {
		t.Errorf("pd_addr = %+v", k)
	}
	// Every key of both runbook shapes and the troubleshooting runbook.
	for _, name := range []string{
		"node.id", "node.name", "node.role", "cluster.id", "cluster.bootstrap", "cluster.initial_members",
		"network.raft_addr", "network.gossip_addr", "network.tls.cert_file", "network.tls.key_file",
		"network.tls.ca_file", "network.tls.require_client_cert", "storage.data_dir",
		"storage.max_write_buffer_number", "storage.block_cache_size", "storage.max_open_files",
		"storage.bloom_filter_bits_per_key", "storage.level0_file_num_compaction_trigger",
		"storage.max_background_compactions", "storage.max_background_flushes",
		"storage.use_direct_io_for_flush_and_compaction", "raft.role", "raft.tick_interval_ms",
		"raft.election_ticks", "raft.heartbeat_ticks", "raft.snapshot_entries", "raft.compaction_overhead",
		"raft.max_in_mem_log_size", "log_level", "log_format", "store_id", "addr", "data_dir", "tls.cert_file",
		"tls.key_file", "tls.ca_file", "tls.require_client_cert", "peers", "namespace_modes",
	} {
		if _, ok := byName[name]; !ok {
			t.Errorf("key %s is missing", name)
		}
	}
}
