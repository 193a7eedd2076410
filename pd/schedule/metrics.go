package schedule

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the scheduling metrics. Store gauges come from the last
// patrol's view (the PD leader's only; a follower exports none).
type metrics struct {
	operators *prometheus.CounterVec
	runs      *prometheus.CounterVec
}

var (
	descOpsRunning = prometheus.NewDesc("pd_schedule_operators_running",
		"Live operators by type (balance-region, replace-down-replica, admin-transfer-peer...) and status (CREATED, STARTED).",
		[]string{"type", "status"}, nil)
	descStoreRegions = prometheus.NewDesc("pd_store_region_count",
		"Peers on the store, as the last patrol counted them (with the live operators' influence).", []string{"store_id"}, nil)
	descStoreLeaders = prometheus.NewDesc("pd_store_leader_count",
		"Region leaders on the store, as the last patrol counted them (with the live operators' influence).", []string{"store_id"}, nil)
	descRegionScore = prometheus.NewDesc("pd_store_region_score",
		"The store's region score (region size in MiB over its region weight) that balance-region compares.", []string{"store_id"}, nil)
	descLeaderScore = prometheus.NewDesc("pd_store_leader_score",
		"The store's leader score (leader count or size over its leader weight) that balance-leader compares.", []string{"store_id"}, nil)
	descSnapshots = prometheus.NewDesc("pd_store_snapshots_in_flight",
		"Snapshots the live operators' AddLearner steps hold per store and direction, the step running now and those still ahead (sending: the region leader's store; receiving: the new peer's); max-snapshot-count caps both.",
		[]string{"store_id", "direction"}, nil)
)

func newMetrics(reg prometheus.Registerer, co *Coordinator) (*metrics, error) {
	m := &metrics{
		operators: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pd_schedule_operators_total",
			Help: "Operator events by type (what made it), kind (leader, region, replica, admin) and status reached (CREATED, STARTED, SUCCESS, TIMEOUT, CANCELED, REPLACED).",
		}, []string{"type", "kind", "status"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pd_scheduler_runs_total",
			Help: "Scheduler runs by scheduler and result (scheduled: made operators; balanced: nothing to do; failed: could not act, see the 'failed to schedule operator' log; paused).",
		}, []string{"scheduler", "result"}),
	}
	for _, c := range []prometheus.Collector{m.operators, m.runs, &viewCollector{co: co}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) operatorEvent(op *Operator, st Status) {
	m.operators.WithLabelValues(op.Desc, op.Kind.String(), string(st)).Inc()
}

func (m *metrics) schedulerRun(name, result string) { m.runs.WithLabelValues(name, result).Inc() }

// viewCollector exports the live operators and the last patrol's store
// scores at scrape time.
type viewCollector struct{ co *Coordinator }

func (c *viewCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOpsRunning, descStoreRegions, descStoreLeaders, descRegionScore, descLeaderScore, descSnapshots} {
		ch <- d
	}
}

func (c *viewCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ typ, status string }
	running := map[key]int{}
	for _, v := range c.co.ctrl.Operators() {
		running[key{v.Desc, string(v.Status)}]++
	}
	for k, n := range running {
		ch <- prometheus.MustNewConstMetric(descOpsRunning, prometheus.GaugeValue, float64(n), k.typ, k.status)
	}
	c.co.mu.Lock()
	v := c.co.last
	c.co.mu.Unlock()
	if v == nil {
		return
	}
	ins := c.co.ctrl.influences()
	for _, s := range v.stores {
		if s.State == StateTombstone {
			continue
		}
		id := strconv.FormatUint(s.ID, 10)
		st := v.stats[s.ID]
		ch <- prometheus.MustNewConstMetric(descStoreRegions, prometheus.GaugeValue, st.regionCount, id)
		ch <- prometheus.MustNewConstMetric(descStoreLeaders, prometheus.GaugeValue, st.leaderCount, id)
		ch <- prometheus.MustNewConstMetric(descRegionScore, prometheus.GaugeValue, v.regionScore(s), id)
		ch <- prometheus.MustNewConstMetric(descLeaderScore, prometheus.GaugeValue, v.leaderScore(s), id)
		var send, recv int
		if in := ins[s.ID]; in != nil {
			send, recv = in.sending, in.receiving
		}
		ch <- prometheus.MustNewConstMetric(descSnapshots, prometheus.GaugeValue, float64(send), id, "sending")
		ch <- prometheus.MustNewConstMetric(descSnapshots, prometheus.GaugeValue, float64(recv), id, "receiving")
	}
}
