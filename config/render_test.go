package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestTOMLRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("testdata: %v, %d files", err, len(files))
	}
	cases := map[string]LoadOptions{"defaults": {}}
	for _, f := range files {
		cases[f] = LoadOptions{File: f}
	}
	cases["env and flags"] = LoadOptions{
		File: "testdata/flaredb.toml",
		Env:  []string{"CENTRA_PEERS=2=10.0.0.2:2380,3=10.0.0.3:2380", "CENTRA_NODE_NAME=quote\"and\\slash\ttab"},
		Flags: map[string]any{
			"cluster.initial_members": "1=10.0.0.1:2380",
			"namespace_modes":         map[string]string{"odd key.with dots": "strong"},
		},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			c := mustLoad(t, opts)
			out, err := c.TOML()
			if err != nil {
				t.Fatalf("TOML: %v", err)
			}
			path := writeFile(t, "rendered.toml", string(out))
			again, err := Load(LoadOptions{File: path})
			if err != nil {
				t.Fatalf("Load(rendered): %v\n%s", err, out)
			}
			if !reflect.DeepEqual(plain(again), plain(c)) {
				t.Errorf("round trip changed the config:\n got %+v\nwant %+v\n%s", plain(again), plain(c), out)
			}
		})
	}
}

func TestTOMLContent(t *testing.T) {
	c := mustLoad(t, LoadOptions{File: "testdata/chainfire.toml", Env: []string{"CENTRA_RAFT_TICK_INTERVAL_MS=50"}})
	out, err := c.TOML()
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{
		"[node]\n",
		"id = 4\n",
		"[network.tls]\n",
		`cert_file = "/etc/centra-cloud/certs/chainfire-node-4.crt"`,
		"# (set by environment variable CENTRA_RAFT_TICK_INTERVAL_MS)\ntick_interval_ms = 50\n",
		"# (set by file testdata/chainfire.toml)\nrole = \"control_plane\"\n",
		"# Raft tick in milliseconds",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("TOML() lacks %q:\n%s", want, text)
		}
	}
	// flaredb.toml-only keys are left out of a chainfire-shaped config.
	for _, absent := range []string{"store_id", "pd_addr", "[tls]", "[peers]", "\naddr ="} {
		if strings.Contains(text, absent) {
			t.Errorf("TOML() contains %q:\n%s", absent, text)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if len(line) > 80 && strings.HasPrefix(line, "#") && strings.Contains(line, " ") && !strings.HasPrefix(line, "# (set by") {
			t.Errorf("comment line longer than 80 columns: %q", line)
		}
	}
}

func TestTOMLTooLarge(t *testing.T) {
	c := Default()
	c.Raft.MaxInMemLogSize = 1 << 63
	if _, err := c.TOML(); err == nil || !strings.Contains(err.Error(), "raft.max_in_mem_log_size") {
		t.Errorf("TOML() error = %v, want one naming raft.max_in_mem_log_size", err)
	}
}

func TestTOMLWritesDefaultsFile(t *testing.T) {
	// The rendered defaults are a valid starting config file.
	out, err := Default().TOML()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "centra.toml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, LoadOptions{File: path})
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(rendered defaults): %v", err)
	}
}
