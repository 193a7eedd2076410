package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefuseEtcdDataDir: a data directory holding an etcd member is refused
// with the way to migrate it; others are accepted.
func TestRefuseEtcdDataDir(t *testing.T) {
	dir := t.TempDir()
	if err := refuseEtcdDataDir(dir); err != nil {
		t.Fatalf("empty directory refused: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "member", "snap"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "member", "snap", "db"), []byte("bolt"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := refuseEtcdDataDir(dir)
	if err == nil || !strings.Contains(err.Error(), "centra snapshot restore") || !strings.Contains(err.Error(), "etcd data directory") {
		t.Fatalf("etcd data directory: %v, want a refusal naming centra snapshot restore", err)
	}
}
