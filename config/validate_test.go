package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{"node id 0", func(c *Config) { c.Node.ID = 0 }, []string{"node.id", "IDs start at 1"}},
		{"unknown role", func(c *Config) { c.Node.Role = "control_plane,stor" }, []string{"node.role", `unknown role "stor"`}},
		{"duplicate role", func(c *Config) { c.Node.Role = "control_plane, control_plane" }, []string{"node.role", "listed twice"}},
		{"empty role", func(c *Config) { c.Node.Role = " " }, []string{"node.role", "empty"}},
		{"log level", func(c *Config) { c.LogLevel = "verbose" }, []string{"log_level", `"verbose"`, "debug, info, warn or error"}},
		{"log format", func(c *Config) { c.LogFormat = "logfmt" }, []string{"log_format", `"logfmt"`, "text or json"}},
		{"cluster id", func(c *Config) { c.Cluster.ID = 0 }, []string{"cluster.id", "same cluster ID"}},
		{"raft role", func(c *Config) { c.Raft.Role = "observer" }, []string{"raft.role", `"observer"`, "voter"}},
		{"election vs heartbeat", func(c *Config) { c.Raft.ElectionTicks, c.Raft.HeartbeatTicks = 4, 2 }, []string{"raft.election_ticks", "greater than 2 * raft.heartbeat_ticks (4)"}},
		{"heartbeat 0", func(c *Config) { c.Raft.HeartbeatTicks = 0 }, []string{"raft.heartbeat_ticks", "0 is not allowed"}},
		{"tick", func(c *Config) { c.Raft.TickIntervalMs = 0 }, []string{"raft.tick_interval_ms", "1 to 10000"}},
		{"snapshot entries", func(c *Config) { c.Raft.SnapshotEntries = 0 }, []string{"raft.snapshot_entries", "never be compacted"}},
		{"in-mem log", func(c *Config) { c.Raft.MaxInMemLogSize = 100 }, []string{"raft.max_in_mem_log_size", "0 (unbounded)"}},
		{"api port", func(c *Config) { c.Network.APIAddr = "127.0.0.1:99999" }, []string{"network.api_addr", `port "99999"`}},
		{"api no port", func(c *Config) { c.Network.APIAddr = "localhost" }, []string{"network.api_addr", "not HOST:PORT"}},
		{"raft port 0", func(c *Config) { c.Network.RaftAddr = "127.0.0.1:0" }, []string{"network.raft_addr", "port 0"}},
		{"raft scheme", func(c *Config) { c.Network.RaftAddr = "http://127.0.0.1:2380" }, []string{"network.raft_addr", "without a scheme"}},
		{"port clash", func(c *Config) { c.Network.GossipAddr = "0.0.0.0:2380" }, []string{"network.gossip_addr", "same port as network.raft_addr"}},
		{"write buffer", func(c *Config) { c.Storage.WriteBufferSize = 4 << 30 }, []string{"storage.write_buffer_size", "4 GiB-1"}},
		{"write buffers", func(c *Config) { c.Storage.MaxWriteBufferNumber = 1 }, []string{"storage.max_write_buffer_number", "allowed 2 to 64"}},
		{"block cache", func(c *Config) { c.Storage.BlockCacheSize = 10 }, []string{"storage.block_cache_size", "1 MiB"}},
		{"open files", func(c *Config) { c.Storage.MaxOpenFiles = -1 }, []string{"storage.max_open_files", "-1 for unlimited"}},
		{"bloom", func(c *Config) { c.Storage.BloomFilterBitsPerKey = 100 }, []string{"storage.bloom_filter_bits_per_key"}},
		{"l0", func(c *Config) { c.Storage.Level0FileNumCompactionTrigger = 0 }, []string{"storage.level0_file_num_compaction_trigger"}},
		{"compactions", func(c *Config) { c.Storage.MaxBackgroundCompactions = 0 }, []string{"storage.max_background_compactions"}},
		{"flushes", func(c *Config) { c.Storage.MaxBackgroundFlushes = 0 }, []string{"storage.max_background_flushes"}},
		{"data dir", func(c *Config) { c.Storage.DataDir = "" }, []string{"storage.data_dir", "empty"}},
		{"tls partial", func(c *Config) { c.Network.TLS.CertFile = "/nonexistent/node.crt" }, nil},
		{"require client cert alone", func(c *Config) { c.Network.TLS.RequireClientCert = true }, []string{"network.tls.require_client_cert", "needs"}},
		{"members without bootstrap", func(c *Config) {
			c.Cluster.Bootstrap = false
			c.Cluster.InitialMembers = []string{"1=127.0.0.1:2380"}
		}, []string{"cluster.initial_members", "must be empty when cluster.bootstrap = false"}},
		{"members missing self", func(c *Config) { c.Cluster.InitialMembers = []string{"2=10.0.0.2:2380"} }, []string{"cluster.initial_members", "does not list this node (node.id = 1)"}},
		{"members duplicate id", func(c *Config) {
			c.Cluster.InitialMembers = []string{"1=127.0.0.1:2380", "1=10.0.0.2:2380"}
		}, []string{"cluster.initial_members", "ID 1 is listed twice"}},
		{"members duplicate addr", func(c *Config) {
			c.Cluster.InitialMembers = []string{"1=127.0.0.1:2380", "2=127.0.0.1:2380"}
		}, []string{"cluster.initial_members", "address 127.0.0.1:2380 is listed twice"}},
		{"members self addr", func(c *Config) { c.Cluster.InitialMembers = []string{"1=10.0.0.1:2380"} }, []string{"cluster.initial_members", "network.raft_addr is 127.0.0.1:2380"}},
		{"members syntax", func(c *Config) { c.Cluster.InitialMembers = []string{"1=127.0.0.1:2380", "10.0.0.2:2380"} }, []string{"cluster.initial_members", `entry 1 "10.0.0.2:2380"`, `missing "="`}},
		{"namespace mode", func(c *Config) { c.NamespaceModes = map[string]string{"default": "weak"} }, []string{"namespace_modes", `"default" has mode "weak"`, "strong"}},
		{"timeseries retention", func(c *Config) { c.Timeseries.Retention = "15x" }, []string{"timeseries.retention", `"15x" is not a duration`}},
		{"timeseries window", func(c *Config) { c.Timeseries.OutOfOrderWindow = "2d" }, []string{"timeseries.out_of_order_window", "out of range"}},
		{"timeseries self scrape", func(c *Config) { c.Timeseries.SelfScrapeInterval = "500ms" }, []string{"timeseries.self_scrape_interval", "use 0s to turn self-scraping off"}},
		{"timeseries max samples", func(c *Config) { c.Timeseries.MaxSamples = 0 }, []string{"timeseries.max_samples", ">= 1"}},
		{"peer id", func(c *Config) { c.Peers = map[string]string{"node1": "10.0.0.1:2380"} }, []string{"peers", `key "node1"`}},
		{"pd addr", func(c *Config) { c.PDAddr = []string{"pd"} }, []string{"pd_addr", `"pd"`}},
		{"store-only needs pd", func(c *Config) { c.Node.Role = RoleStore }, []string{"pd_addr", "store-only node"}},
		{"store keys without store role", func(c *Config) {
			c.Node.Role = RoleControlPlane
			c.PDAddr = []string{"pd:2379"}
		}, []string{"pd_addr", "only the store role uses it"}},
		{"data dir alias", func(c *Config) { c.DataDir = "/other" }, []string{"data_dir", "differs from storage.data_dir"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == nil {
				// Partial TLS: one error per missing file.
				wantErrs(t, err,
					[]string{"network.tls.cert_file", "/nonexistent/node.crt", "no such file"},
					[]string{"network.tls.key_file", "set cert_file, key_file and ca_file together"},
					[]string{"network.tls.ca_file", "set cert_file, key_file and ca_file together"})
				return
			}
			wantErrs(t, err, tt.want)
			if !errors.Is(err, ErrInvalidValue) {
				t.Errorf("Validate error %v does not wrap ErrInvalidValue", err)
			}
		})
	}
}

func TestValidateNamesFile(t *testing.T) {
	path := writeFile(t, "c.toml", "[node]\nid = 0\n")
	c := mustLoad(t, LoadOptions{File: path})
	err := c.Validate()
	wantErrs(t, err, []string{"config: node.id (from file " + path + "): 0 is not allowed"})
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Key != "node.id" || ke.Source != "file "+path {
		t.Errorf("errors.As(KeyError) = %+v", ke)
	}
}

func TestValidateTLSFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"n.crt", "n.key", "ca.crt"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := Default()
	c.Network.TLS = TLS{CertFile: filepath.Join(dir, "n.crt"), KeyFile: filepath.Join(dir, "n.key"), CAFile: filepath.Join(dir, "ca.crt"), RequireClientCert: true}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	c.Network.TLS.CAFile = dir
	wantErrs(t, c.Validate(), []string{"network.tls.ca_file", "is a directory"})
}

func TestMembers(t *testing.T) {
	c := Default()
	c.Cluster.InitialMembers = []string{"1=10.0.0.1:2380", " 2=node2.example:2380", "3=[fd00::3]:2380"}
	got, err := c.Members()
	want := []Member{{1, "10.0.0.1:2380"}, {2, "node2.example:2380"}, {3, "[fd00::3]:2380"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Members() = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []struct{ entry, want string }{
		{"0=10.0.0.1:2380", "ID 0 is not allowed"},
		{"x=10.0.0.1:2380", `ID "x" is not a number`},
		{"1=10.0.0.1", "not HOST:PORT"},
		{"1=:2380", "missing host"},
		{"1=10.0.0.1:0", "port 0"},
		{"1", `missing "="`},
	} {
		c.Cluster.InitialMembers = []string{bad.entry}
		_, err := c.Members()
		wantErrs(t, err, []string{"cluster.initial_members", bad.entry, bad.want, `"ID=HOST:PORT"`})
	}
	c.Cluster.Bootstrap = false
	if m, err := c.BootstrapMembers(); m != nil || err != nil {
		t.Errorf("BootstrapMembers() with bootstrap=false = %v, %v; want nil", m, err)
	}
}
