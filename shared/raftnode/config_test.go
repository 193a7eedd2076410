package raftnode

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestConfigValidation(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	valid := func() Config {
		return Config{NodeHostDir: "/tmp/x", RaftAddress: "127.0.0.1:2380", Logger: logger}
	}
	cases := []struct {
		name  string
		edit  func(*Config)
		field string // the message must name it
	}{
		{"no logger", func(c *Config) { c.Logger = nil }, "Logger"},
		{"no dir", func(c *Config) { c.NodeHostDir = "" }, "NodeHostDir"},
		{"bad raft address", func(c *Config) { c.RaftAddress = "localhost" }, "RaftAddress"},
		{"port zero", func(c *Config) { c.RaftAddress = "127.0.0.1:0" }, "RaftAddress"},
		{"bad listen address", func(c *Config) { c.ListenAddress = ":2380" }, "ListenAddress"},
		{"election too short", func(c *Config) { c.ElectionRTT, c.HeartbeatRTT = 4, 2 }, "ElectionRTT"},
		{"tiny in-mem log", func(c *Config) { c.MaxInMemLogSize = 100 }, "MaxInMemLogSize"},
		{"unknown preset", func(c *Config) { c.LogDB = 7 }, "LogDB"},
		{"partial TLS", func(c *Config) { c.TLS = &PeerTLS{CAFile: "ca.pem"} }, "TLS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.edit(&cfg)
			_, err := New(cfg)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("New = %v, want ErrInvalidConfig naming %s", err, tc.field)
			}
		})
	}

	n, err := New(valid())
	if err != nil {
		t.Fatal(err)
	}
	if n.cfg.RTTMillisecond != DefaultRTTMillisecond || n.cfg.ElectionRTT != DefaultElectionRTT ||
		n.cfg.HeartbeatRTT != DefaultHeartbeatRTT || n.cfg.SnapshotEntries != DefaultSnapshotEntries ||
		n.cfg.MaxInMemLogSize != DefaultMaxInMemLogSize {
		t.Fatalf("defaults not applied: %+v", n.cfg)
	}
	if n.electionTimeout.Milliseconds() != 600 {
		t.Fatalf("election timeout %v, want 600ms", n.electionTimeout)
	}
	if nh := n.NodeHost(); nh != nil {
		t.Fatal("NodeHost before Start")
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close of an unstarted node: %v", err)
	}

	reg := prometheus.NewRegistry()
	cfg := valid()
	cfg.Registerer = reg
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("second New on the same registry: %v", err)
	}
}
