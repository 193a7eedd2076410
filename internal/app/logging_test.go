package app

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestTextHandler checks the runbook's line shape and that its shell
// pipelines (grep ERROR | awk '{print $NF}') read it.
func TestTextHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewTextHandler(&buf, slog.LevelInfo, false))
	log.With("component", "chainfire_network").Error("Failed to connect to peer, addr=node2:2380", "err", errors.New("dial tcp: connection refused"))
	log.With("component", "chainfire_raft", "shard_id", 0).WithGroup("g").Info("Leader elected, term=3", "leader_id", 1)
	log.Info("no component", "empty", "", "eq", "a=b")
	log.Debug("hidden")
	want := `ERROR chainfire_network: Failed to connect to peer, addr=node2:2380, err="dial tcp: connection refused"
INFO chainfire_raft: Leader elected, term=3, shard_id=0, g.leader_id=1
INFO centra: no component, empty="", eq="a=b"
`
	if buf.String() != want {
		t.Fatalf("text lines:\n%s\nwant:\n%s", buf.String(), want)
	}

	buf.Reset()
	log.With("component", "chainfire_network").Error("Failed to connect to peer, addr=node2:2380")
	cmd := exec.Command("sh", "-c", `grep ERROR | awk '{print $NF}'`)
	cmd.Stdin = &buf
	out, err := cmd.Output()
	if err != nil || string(out) != "addr=node2:2380\n" {
		t.Errorf("grep ERROR | awk '{print $NF}': %q, %v", out, err)
	}

	buf.Reset()
	slog.New(NewTextHandler(&buf, slog.LevelInfo, true)).Warn("x")
	if !strings.Contains(buf.String(), "Z WARN centra: x\n") {
		t.Errorf("with time: %q", buf.String())
	}
}

// TestNewLoggerFormat checks log_format and the journald default.
func TestNewLoggerFormat(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := NewLogger(f, slog.LevelInfo, "").Handler().(*slog.JSONHandler); !ok {
		t.Error("default on a file: want JSON")
	}
	if _, ok := NewLogger(f, slog.LevelInfo, LogFormatText).Handler().(*TextHandler); !ok {
		t.Error("log_format text: want TextHandler")
	}
	if _, ok := NewLogger(f, slog.LevelInfo, LogFormatJSON).Handler().(*slog.JSONHandler); !ok {
		t.Error("log_format json: want JSON")
	}
	if isJournalStream(f, "1:2") || isJournalStream(f, "") {
		t.Error("a file is not the journal stream")
	}
	// JOURNAL_STREAM naming this very file makes it the journal stream.
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	h, ok := NewLogger(f, slog.LevelInfo, "").Handler().(*TextHandler)
	if !ok || h.time {
		t.Errorf("default under journald: want text without timestamps, got %T", NewLogger(f, slog.LevelInfo, "").Handler())
	}
	if _, ok := NewLogger(f, slog.LevelInfo, LogFormatJSON).Handler().(*slog.JSONHandler); !ok {
		t.Error("log_format json under journald: want JSON")
	}
}
