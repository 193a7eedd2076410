package pd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are PD's Prometheus metrics. Store and region gauges are read
// from the leader's cache at scrape time; a follower exports none of them
// (its view would be stale), so query them with max() across nodes.
type metrics struct {
	heartbeats        *prometheus.CounterVec
	heartbeatDuration prometheus.Histogram
}

var (
	descStoreState = prometheus.NewDesc("flaredb_store_state",
		"1 when the store is Up (heartbeating, not Offline), 0 otherwise (Disconnected, Down, Offline); Tombstone stores are left out. Every control-plane node exports it: a follower asks the PD leader at scrape time.",
		[]string{"store_id"}, nil)
	descStoreCount = prometheus.NewDesc("pd_store_count",
		"Number of stores by state name (Up, Disconnected, Down, Offline, Tombstone). Exported by the PD leader only.",
		[]string{"state"}, nil)
	descRegionCount = prometheus.NewDesc("pd_region_count",
		"Number of regions PD knows. Exported by the PD leader only.", nil, nil)
	descPendingPeers = prometheus.NewDesc("flaredb_pending_peers_total",
		"Region peers not yet running on their store or reported pending by their leader (a split not applied there yet, a lost replica). Exported by the PD leader only.", nil, nil)
)

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pd_store_heartbeat_total",
			Help: "Store heartbeats handled by this node, by result (ok, error, not_leader).",
		}, []string{"result"}),
		heartbeatDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pd_store_heartbeat_duration_seconds",
			Help:    "Time to handle one store heartbeat on this node.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	for _, c := range []prometheus.Collector{m.heartbeats, m.heartbeatDuration, &storeCollector{s: s}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observeHeartbeat(d time.Duration, err error) {
	result := "ok"
	switch {
	case err == nil:
	case isNotLeader(err):
		result = "not_leader"
	default:
		result = "error"
	}
	m.heartbeats.WithLabelValues(result).Inc()
	m.heartbeatDuration.Observe(d.Seconds())
}

// storeCollector reads the store and region gauges at scrape time.
type storeCollector struct{ s *Server }

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descStoreState
	ch <- descStoreCount
	ch <- descRegionCount
	ch <- descPendingPeers
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	if !s.cfg.KV.IsLeader() {
		c.collectFromLeader(ch)
		return
	}
	defer s.readCache()()
	if !s.loaded {
		return
	}
	counts := map[string]int{StateUp: 0, StateDisconnected: 0, StateDown: 0, StateOffline: 0, StateTombstone: 0}
	for id, e := range s.stores {
		name := s.stateName(e)
		counts[name]++
		if name == StateTombstone {
			continue // gone for good: no alert
		}
		up := 0.0
		if name == StateUp {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descStoreState, prometheus.GaugeValue, up, strconv.FormatUint(id, 10))
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(descStoreCount, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(descRegionCount, prometheus.GaugeValue, float64(len(s.regions.byID)))
	pending := 0
	for _, e := range s.regions.byID {
		pending += len(s.pendingPeers(e))
	}
	ch <- prometheus.MustNewConstMetric(descPendingPeers, prometheus.GaugeValue, float64(pending))
}

// leaderScrapeTimeout bounds a follower's question to the leader at
// scrape time.
const leaderScrapeTimeout = 2 * time.Second

// collectFromLeader exports flaredb_store_state on a follower from the PD
// leader's GET /stores (store states live in the leader's memory). When
// the leader cannot be asked, the follower exports nothing, as before.
func (c *storeCollector) collectFromLeader(ch chan<- prometheus.Metric) {
	s := c.s
	ctx, cancel := context.WithTimeout(context.Background(), leaderScrapeTimeout)
	defer cancel()
	states, err := s.leaderStoreStates(ctx)
	if err != nil {
		s.log.Debug("flaredb_store_state: cannot ask the pd leader", "err", err)
		return
	}
	for id, name := range states {
		if name == StateTombstone {
			continue
		}
		up := 0.0
		if name == StateUp {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descStoreState, prometheus.GaugeValue, up, strconv.FormatUint(id, 10))
	}
}

// leaderStoreStates asks the leader's HTTP API for every store's state.
func (s *Server) leaderStoreStates(ctx context.Context) (map[uint64]string, error) {
	leader, err := s.cfg.KV.LeaderURL(ctx)
	if err != nil || leader == "" {
		return nil, fmt.Errorf("no leader known: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(leader, "/")+APIPrefix+"/stores", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(forwardedHeader, "1")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/stores: %s", leader, resp.Status)
	}
	var out struct {
		Stores []struct {
			ID    uint64 `json:"id"`
			State string `json:"state"`
		} `json:"stores"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	states := make(map[uint64]string, len(out.Stores))
	for _, st := range out.Stores {
		states[st.ID] = st.State
	}
	return states, nil
}
