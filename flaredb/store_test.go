package flaredb

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
)

// fakePD fails the first failures calls, then answers; a registered id with
// another address is refused as PD does.
type fakePD struct {
	PD         // region calls are not used by these tests
	mu         sync.Mutex
	failures   int
	stores     map[uint64]string
	heartbeats int
}

func (f *fakePD) PutStore(_ context.Context, s *metav1.Store) (*metav1.Store, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("pd down"))
	}
	if addr, ok := f.stores[s.Id]; ok && addr != s.Address {
		return nil, connect.NewError(connect.CodeAlreadyExists, errors.New("store_id taken by "+addr))
	}
	f.stores[s.Id] = s.Address
	return s, nil
}

func (f *fakePD) StoreHeartbeat(context.Context, *pdv1.StoreStats, *metav1.Store) (*pdv1.StoreHeartbeatResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heartbeats++
	return &pdv1.StoreHeartbeatResponse{}, nil
}

func newTestStore(t *testing.T, dir string, id uint64, addr string, pd PD) *Store {
	t.Helper()
	s, err := NewStore(StoreConfig{ID: id, Address: addr, DataDir: dir, PD: pd, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), HeartbeatInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreRegistrationAndIdentity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pd := &fakePD{failures: 2, stores: map[uint64]string{}}
	dir := t.TempDir()
	if err := newTestStore(t, dir, 4, "10.0.0.4:2379", pd).Register(ctx); err != nil {
		t.Fatalf("register after PD failures: %v", err)
	}
	// Another store claiming id 4 from another address is refused at once.
	err := newTestStore(t, t.TempDir(), 4, "10.0.0.9:2379", pd).Register(ctx)
	if err == nil || !strings.Contains(err.Error(), "10.0.0.4:2379") || !strings.Contains(err.Error(), "10.0.0.9:2379") {
		t.Fatalf("duplicate store_id: %v", err)
	}
	// The data directory stays bound to store 4.
	if err := newTestStore(t, dir, 5, "10.0.0.4:2379", pd).Register(ctx); err == nil || !strings.Contains(err.Error(), "belongs to store_id 4") {
		t.Fatalf("reused data dir: %v", err)
	}
	// Heartbeats flow until the context ends.
	s := newTestStore(t, dir, 4, "10.0.0.4:2379", pd)
	hctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.RunHeartbeats(hctx); close(done) }()
	for {
		pd.mu.Lock()
		n := pd.heartbeats
		pd.mu.Unlock()
		if n >= 3 {
			break
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			t.Fatal("no heartbeats")
		}
	}
	stop()
	<-done
	if st := s.stats(); st.Capacity == 0 || st.Available == 0 || st.StoreId != 4 {
		t.Fatalf("stats: %v", st)
	}
}

// TestUsedSizeCached: heartbeats report the data directory's size as
// measured at most usedSizeRefresh ago, not a walk per heartbeat.
func TestUsedSizeCached(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a", 1000)
	var u usedSize
	t0 := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	if got := u.size(dir, t0); got != 1000 {
		t.Fatalf("first measurement = %d, want 1000", got)
	}
	write("b", 500)
	if got := u.size(dir, t0.Add(usedSizeRefresh-time.Second)); got != 1000 {
		t.Fatalf("within the refresh period = %d, want the cached 1000", got)
	}
	if got := u.size(dir, t0.Add(usedSizeRefresh)); got != 1500 {
		t.Fatalf("after the refresh period = %d, want 1500", got)
	}
}
