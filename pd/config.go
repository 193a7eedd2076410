package pd

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/centra-cloud/centra/chainfire/client"
)

// DefaultDisconnectAfter is how long a store may go without a heartbeat
// before it shows as Disconnected (TiKV PD's fixed 20 s).
const DefaultDisconnectAfter = 20 * time.Second

// DefaultCheckInterval is how often the leader checks Offline stores for
// burial as Tombstone.
const DefaultCheckInterval = 10 * time.Second

// Member is one control-plane member for GET /pd/api/v1/members.
type Member struct {
	Name       string   `json:"name"`
	MemberID   uint64   `json:"member_id"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
}

// Config configures a Server. KV is required; the rest have defaults.
type Config struct {
	// KV is the metadata shard's system keyspace, where PD keeps its state.
	KV client.SystemKV
	// Logger receives PD's logs (default: slog.Default()).
	Logger *slog.Logger
	// Registry gets PD's metrics (default: a private registry, i.e. none
	// exported).
	Registry prometheus.Registerer
	// Now is the clock (default time.Now); tests advance a fake one.
	Now func() time.Time
	// DisconnectAfter is the heartbeat age after which an Up store shows
	// as Disconnected (default 20 s).
	DisconnectAfter time.Duration
	// CheckInterval is the period of the Offline -> Tombstone check (default
	// 10 s).
	CheckInterval time.Duration
	// PatrolInterval is the period of the scheduling patrol (replica
	// checker and schedulers) on the leader (default 1 s).
	PatrolInterval time.Duration
	// UnstartedPeerGrace is how long a peer may stay unstarted on its Up
	// store before the checker rebuilds it (default 1 min).
	UnstartedPeerGrace time.Duration
	// HTTPClient forwards HTTP API requests from a follower to the leader
	// (default http.DefaultClient).
	HTTPClient *http.Client
	// Members lists the control-plane members for /members (optional).
	Members func(ctx context.Context) ([]Member, error)
	// ClusterVersion is reported to stores in heartbeat responses.
	ClusterVersion string
	// MaxReplicas is max-replicas until one is set through
	// /config/replicate; 0 means TiKV's 3. The single-process dev mode
	// uses 1.
	MaxReplicas uint64
}

func (c *Config) fill() error {
	if c.KV == nil {
		return errors.New("pd: config: KV is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DisconnectAfter == 0 {
		c.DisconnectAfter = DefaultDisconnectAfter
	}
	if c.DisconnectAfter < 0 {
		return errors.New("pd: config: DisconnectAfter must be positive")
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.CheckInterval < 0 {
		return errors.New("pd: config: CheckInterval must be positive")
	}
	if c.PatrolInterval == 0 {
		c.PatrolInterval = DefaultPatrolInterval
	}
	if c.UnstartedPeerGrace == 0 {
		c.UnstartedPeerGrace = DefaultUnstartedPeerGrace
	}
	if c.PatrolInterval < 0 || c.UnstartedPeerGrace < 0 {
		return errors.New("pd: config: PatrolInterval and UnstartedPeerGrace must be positive")
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.ClusterVersion == "" {
		c.ClusterVersion = "centra-pd/v1"
	}
	return nil
}
