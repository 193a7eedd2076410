package tsdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// PromQLVersion is the Prometheus release whose PromQL engine centra
// embeds; /api/v1/status/buildinfo reports it, so that clients such as
// Grafana enable the features of that version.
const PromQLVersion = "3.16.0"

// APIConfig configures the HTTP API.
type APIConfig struct {
	// MaxSamples is the most samples a query may hold in memory.
	MaxSamples int
	// Timeout bounds one query.
	Timeout time.Duration
	// Version is centra's version (buildinfo's revision).
	Version  string
	Logger   *slog.Logger
	Registry prometheus.Registerer
}

// API serves Prometheus's HTTP API over a DB.
type API struct {
	db     *DB
	cfg    APIConfig
	engine *promql.Engine
	parser parser.Parser
	log    *slog.Logger
}

// NewAPI builds the API with an embedded PromQL engine.
func NewAPI(db *DB, cfg APIConfig) *API {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := parser.NewParser(parser.Options{})
	eng := promql.NewEngine(promql.EngineOpts{
		Logger:               log.With("component", "promql"),
		Reg:                  cfg.Registry,
		MaxSamples:           cfg.MaxSamples,
		Timeout:              cfg.Timeout,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		Parser:               p,
	})
	return &API{db: db, cfg: cfg, engine: eng, parser: p, log: log.With("component", "tsdb")}
}

// Engine is the embedded PromQL engine.
func (a *API) Engine() *promql.Engine { return a.engine }

// Handler serves /api/v1/... (mount it at "/api/v1/").
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/write", a.db.ServeWrite)
	mux.HandleFunc("/api/v1/read", a.serveRead)
	for path, h := range map[string]func(*http.Request) (any, annotations.Annotations, error){
		"/api/v1/query":               a.query,
		"/api/v1/query_range":         a.queryRange,
		"/api/v1/series":              a.series,
		"/api/v1/labels":              a.labelNames,
		"/api/v1/label/{name}/values": a.labelValues,
		"/api/v1/metadata":            a.metadata,
		"/api/v1/status/buildinfo":    a.buildInfo,
		"/api/v1/query_exemplars":     func(*http.Request) (any, annotations.Annotations, error) { return []any{}, nil, nil },
	} {
		endpoint := strings.TrimPrefix(path, "/api/v1/")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			data, warns, err := h(r)
			a.respond(w, data, warns, err)
			a.db.m.queryDuration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
		})
	}
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		a.respond(w, nil, nil, &apiError{"not_found", fmt.Errorf("unknown API path %s", r.URL.Path)})
	})
	return mux
}

// apiError is an error with Prometheus's error type.
type apiError struct {
	typ string
	err error
}

func (e *apiError) Error() string { return e.err.Error() }

func badData(format string, args ...any) error {
	return &apiError{"bad_data", fmt.Errorf(format, args...)}
}

// errorStatus maps an error to Prometheus's error type and HTTP status.
func errorStatus(err error) (string, int) {
	var ae *apiError
	var canceled promql.ErrQueryCanceled
	var timeout promql.ErrQueryTimeout
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &canceled), errors.Is(err, context.Canceled):
		ae = &apiError{typ: "canceled"}
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		ae = &apiError{typ: "timeout"}
	case errors.Is(err, ErrStorage):
		ae = &apiError{typ: "unavailable"}
	default:
		ae = &apiError{typ: "execution"}
	}
	return ae.typ, map[string]int{
		"bad_data": http.StatusBadRequest, "execution": http.StatusUnprocessableEntity,
		"canceled": 499, "timeout": http.StatusServiceUnavailable, "unavailable": http.StatusServiceUnavailable,
		"not_found": http.StatusNotFound,
	}[ae.typ]
}

type response struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

func (a *API) respond(w http.ResponseWriter, data any, warns annotations.Annotations, err error) {
	w.Header().Set("Content-Type", "application/json")
	resp := response{Status: "success", Data: data}
	resp.Warnings, resp.Infos = warns.AsStrings("", 10, 10)
	code := http.StatusOK
	if err != nil {
		resp = response{Status: "error", Error: err.Error()}
		resp.ErrorType, code = errorStatus(err)
		if code >= 500 {
			a.log.Warn("Query failed", "err", err)
		}
	}
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		a.log.Debug("Writing a query answer failed", "err", err)
	}
}

// queryData is the data of /query and /query_range.
type queryData struct {
	ResultType string `json:"resultType"`
	Result     any    `json:"result"`
}

func (a *API) query(r *http.Request) (any, annotations.Annotations, error) {
	ts, err := timeParam(r, "time", time.Now())
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel, err := a.queryContext(r)
	if err != nil {
		return nil, nil, err
	}
	defer cancel()
	q, err := a.engine.NewInstantQuery(ctx, a.db.Queryable(a.cfg.MaxSamples), a.queryOpts(r), r.FormValue("query"), ts)
	return a.exec(ctx, q, err)
}

func (a *API) queryRange(r *http.Request) (any, annotations.Annotations, error) {
	start, err := timeParam(r, "start", time.Time{})
	if err != nil {
		return nil, nil, err
	}
	end, err := timeParam(r, "end", time.Time{})
	if err != nil {
		return nil, nil, err
	}
	if end.Before(start) {
		return nil, nil, badData("invalid parameter \"end\": end timestamp must not be before start time")
	}
	step, err := durationParam(r, "step")
	if err != nil {
		return nil, nil, err
	}
	if step <= 0 {
		return nil, nil, badData("invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer")
	}
	if end.Sub(start)/step > 11000 {
		return nil, nil, badData("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
	}
	ctx, cancel, err := a.queryContext(r)
	if err != nil {
		return nil, nil, err
	}
	defer cancel()
	q, err := a.engine.NewRangeQuery(ctx, a.db.Queryable(a.cfg.MaxSamples), a.queryOpts(r), r.FormValue("query"), start, end, step)
	return a.exec(ctx, q, err)
}

func (a *API) queryOpts(r *http.Request) promql.QueryOpts {
	var lookback time.Duration
	if s := r.FormValue("lookback_delta"); s != "" {
		lookback, _ = parseDuration(s)
	}
	return promql.NewPrometheusQueryOpts(false, lookback, nil)
}

// queryContext applies the request's timeout parameter (at most the
// configured one).
func (a *API) queryContext(r *http.Request) (context.Context, context.CancelFunc, error) {
	timeout := a.cfg.Timeout
	if s := r.FormValue("timeout"); s != "" {
		d, err := parseDuration(s)
		if err != nil || d <= 0 {
			return nil, nil, badData("invalid parameter \"timeout\": %q is not a positive duration", s)
		}
		timeout = min(timeout, d)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	return ctx, cancel, nil
}

func (a *API) exec(ctx context.Context, q promql.Query, err error) (any, annotations.Annotations, error) {
	if err != nil {
		return nil, nil, &apiError{"bad_data", fmt.Errorf("invalid parameter \"query\": %w", err)}
	}
	defer q.Close()
	start := time.Now()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Warnings, res.Err
	}
	rows := 0
	switch v := res.Value.(type) {
	case promql.Vector:
		rows = len(v)
	case promql.Matrix:
		rows = len(v)
	default:
		rows = 1
	}
	a.log.Info(fmt.Sprintf("Handled query, rows=%d, latency=%dms", rows, time.Since(start).Milliseconds()), "query", q.String())
	return queryData{ResultType: string(res.Value.Type()), Result: res.Value}, res.Warnings, nil
}

// matchers parses the match[] parameters.
func (a *API) matchers(r *http.Request) ([][]*labels.Matcher, error) {
	if err := r.ParseForm(); err != nil {
		return nil, badData("parsing the form: %v", err)
	}
	var out [][]*labels.Matcher
	for _, s := range r.Form["match[]"] {
		ms, err := a.parser.ParseMetricSelector(s)
		if err != nil {
			return nil, badData("invalid parameter \"match[]\": %v", err)
		}
		out = append(out, ms)
	}
	return out, nil
}

// querier opens a querier over the request's start/end (default: all
// time).
func (a *API) querier(r *http.Request) (storage.Querier, int64, int64, error) {
	start, err := timeParam(r, "start", time.UnixMilli(math.MinInt64/2))
	if err != nil {
		return nil, 0, 0, err
	}
	end, err := timeParam(r, "end", time.UnixMilli(math.MaxInt64/2))
	if err != nil {
		return nil, 0, 0, err
	}
	q, err := a.db.Queryable(a.cfg.MaxSamples).Querier(start.UnixMilli(), end.UnixMilli())
	return q, start.UnixMilli(), end.UnixMilli(), err
}

func (a *API) series(r *http.Request) (any, annotations.Annotations, error) {
	sets, err := a.matchers(r)
	if err != nil {
		return nil, nil, err
	}
	if len(sets) == 0 {
		return nil, nil, badData("no match[] parameter provided")
	}
	q, start, end, err := a.querier(r)
	if err != nil {
		return nil, nil, err
	}
	defer q.Close()
	seen := map[string]bool{}
	out := []labels.Labels{}
	limit := intParam(r, "limit")
	for _, ms := range sets {
		set := q.Select(r.Context(), true, &storage.SelectHints{Start: start, End: end, Func: "series"}, ms...)
		for set.Next() {
			ls := set.At().Labels()
			if k := ls.String(); !seen[k] && (limit == 0 || len(out) < limit) {
				seen[k] = true
				out = append(out, ls)
			}
		}
		if err := set.Err(); err != nil {
			return nil, nil, err
		}
	}
	return out, nil, nil
}

func (a *API) labelNames(r *http.Request) (any, annotations.Annotations, error) {
	return a.labelQuery(r, func(q storage.Querier, ms []*labels.Matcher) ([]string, error) {
		names, _, err := q.LabelNames(r.Context(), nil, ms...)
		return names, err
	})
}

func (a *API) labelValues(r *http.Request) (any, annotations.Annotations, error) {
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	return a.labelQuery(r, func(q storage.Querier, ms []*labels.Matcher) ([]string, error) {
		vs, _, err := q.LabelValues(r.Context(), name, nil, ms...)
		return vs, err
	})
}

// labelQuery runs fn for each match[] (or once without matchers) and
// returns the sorted union.
func (a *API) labelQuery(r *http.Request, fn func(storage.Querier, []*labels.Matcher) ([]string, error)) (any, annotations.Annotations, error) {
	sets, err := a.matchers(r)
	if err != nil {
		return nil, nil, err
	}
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	q, _, _, err := a.querier(r)
	if err != nil {
		return nil, nil, err
	}
	defer q.Close()
	set := map[string]struct{}{}
	for _, ms := range sets {
		vs, err := fn(q, ms)
		if err != nil {
			return nil, nil, err
		}
		for _, v := range vs {
			set[v] = struct{}{}
		}
	}
	out := sortedKeys(set)
	if limit := intParam(r, "limit"); limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil, nil
}

func (a *API) metadata(r *http.Request) (any, annotations.Annotations, error) {
	md, err := a.db.Metadata(r.Context(), r.FormValue("metric"), intParam(r, "limit"))
	return md, nil, err
}

func (a *API) buildInfo(*http.Request) (any, annotations.Annotations, error) {
	return map[string]string{
		"version":   PromQLVersion,
		"revision":  "centra-" + a.cfg.Version,
		"branch":    "centra",
		"buildUser": "centra",
		"buildDate": "",
		"goVersion": runtime.Version(),
	}, nil, nil
}

func intParam(r *http.Request, name string) int {
	n, _ := strconv.Atoi(r.FormValue(name))
	return max(n, 0)
}

// timeParam parses a time parameter: unix seconds (float) or RFC 3339.
func timeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	s := r.FormValue(name)
	if s == "" {
		if def.IsZero() {
			return time.Time{}, badData("invalid parameter %q: missing", name)
		}
		return def, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1000))*int64(time.Millisecond)).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, badData("invalid parameter %q: cannot parse %q to a valid timestamp (use unix seconds or RFC 3339)", name, s)
}

func durationParam(r *http.Request, name string) (time.Duration, error) {
	d, err := parseDuration(r.FormValue(name))
	if err != nil {
		return 0, badData("invalid parameter %q: %v", name, err)
	}
	return d, nil
}

// parseDuration parses seconds (float) or a Prometheus duration (5m, 1h).
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.Abs(f) >= float64(math.MaxInt64)/float64(time.Second) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration: out of range", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
	}
	return time.Duration(d), nil
}
