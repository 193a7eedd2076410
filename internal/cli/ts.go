package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
)

func tsCommand() *cli.Command {
	return &cli.Command{
		Name:  "ts",
		Usage: "query the time-series database (Prometheus API on any node: /api/v1/...)",
		Subcommands: []*cli.Command{
			{
				Name: "query", Usage: "query EXPR: evaluate PromQL at one time, or over [--start, --end] every --step", ArgsUsage: "EXPR",
				Flags: append(clientFlags(),
					&cli.StringFlag{Name: "time", Usage: "evaluation time: RFC 3339, unix seconds, or now-DURATION (default now)"},
					&cli.StringFlag{Name: "start", Usage: "range query start (RFC 3339, unix seconds, now-DURATION); default end-1h"},
					&cli.StringFlag{Name: "end", Usage: "range query end; default now"},
					&cli.StringFlag{Name: "step", Usage: "range query resolution (15s, 1m, or seconds); default range/250, at least 1s"}),
				Action: tsQuery,
			},
			{
				Name: "series", Usage: "series MATCHER...: list the series matching the selectors (e.g. 'up{job=\"node\"}')", ArgsUsage: "MATCHER...",
				Flags:  append(clientFlags(), &cli.StringFlag{Name: "start", Usage: "only series with samples after this time"}, &cli.StringFlag{Name: "end", Usage: "only series with samples before this time"}),
				Action: tsSeries,
			},
			{
				Name: "labels", Usage: "labels [NAME]: list label names, or the values of label NAME", ArgsUsage: "[NAME]",
				Flags:  append(clientFlags(), &cli.StringSliceFlag{Name: "match", Usage: "only labels of series matching this selector (repeatable)"}),
				Action: tsLabels,
			},
		},
	}
}

// promResponse is Prometheus's API envelope.
type promResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// promGet calls the Prometheus API on the first endpoint that answers and
// returns the body; an API error is returned as "TYPE: message".
func (cn *conn) promGet(ctx context.Context, path string, params url.Values) ([]byte, *promResponse, error) {
	var body []byte
	var resp promResponse
	err := cn.each(ctx, func(ctx context.Context, base string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(params.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := cn.http.Do(req)
		if err != nil {
			return connect.NewError(connect.CodeUnavailable, err)
		}
		defer res.Body.Close()
		if body, err = io.ReadAll(res.Body); err != nil {
			return connect.NewError(connect.CodeUnavailable, err)
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			return fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(body)))
		}
		if resp.Status != "success" {
			err := fmt.Errorf("%s: %s", resp.ErrorType, resp.Error)
			if res.StatusCode == http.StatusServiceUnavailable {
				return connect.NewError(connect.CodeUnavailable, err)
			}
			return err
		}
		return nil
	})
	return body, &resp, err
}

// tsTime turns now, now-DURATION, unix seconds or RFC 3339 into the API's
// unix seconds.
func tsTime(flag, s string, now time.Time) (string, error) {
	switch {
	case s == "now":
		return strconv.FormatFloat(float64(now.UnixMilli())/1000, 'f', -1, 64), nil
	case strings.HasPrefix(s, "now-"):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "now-"))
		if err != nil {
			return "", exitf("--%s %q: %v", flag, s, err)
		}
		return strconv.FormatFloat(float64(now.Add(-d).UnixMilli())/1000, 'f', -1, 64), nil
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s, nil
	}
	if _, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return s, nil
	}
	return "", exitf("--%s %q: use RFC 3339, unix seconds, now or now-DURATION", flag, s)
}

func tsQuery(c *cli.Context) error {
	if c.NArg() != 1 {
		return exitf("ts query: want one PromQL expression, got %d arguments", c.NArg())
	}
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	now := time.Now()
	params := url.Values{"query": {c.Args().First()}}
	path := "/api/v1/query"
	if c.IsSet("start") || c.IsSet("end") || c.IsSet("step") {
		if c.IsSet("time") {
			return exitf("ts query: --time is for instant queries; drop it or --start/--end/--step")
		}
		path = "/api/v1/query_range"
		end, err := tsTime("end", cmp.Or(c.String("end"), "now"), now)
		if err != nil {
			return err
		}
		endF, _ := strconv.ParseFloat(end, 64)
		start, err := tsTime("start", cmp.Or(c.String("start"), strconv.FormatFloat(endF-3600, 'f', -1, 64)), now)
		if err != nil {
			return err
		}
		step := c.String("step")
		if step == "" {
			startF, _ := strconv.ParseFloat(start, 64)
			step = strconv.FormatFloat(max(1, float64(int((endF-startF)/250))), 'f', -1, 64)
		}
		params.Set("start", start)
		params.Set("end", end)
		params.Set("step", step)
	} else if c.IsSet("time") {
		t, err := tsTime("time", c.String("time"), now)
		if err != nil {
			return err
		}
		params.Set("time", t)
	}
	body, resp, err := cn.promGet(c.Context, path, params)
	if err != nil {
		return err
	}
	if cn.json {
		return writeLine(c, body)
	}
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(resp.Data, &data); err != nil {
		return fmt.Errorf("ts query: decode the answer: %w", err)
	}
	w := tabwriter.NewWriter(stdoutOf(c), 0, 4, 2, ' ', 0)
	switch data.ResultType {
	case "vector", "matrix":
		var rows []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
			Values [][]any           `json:"values"`
		}
		if err := json.Unmarshal(data.Result, &rows); err != nil {
			return fmt.Errorf("ts query: decode the %s: %w", data.ResultType, err)
		}
		fmt.Fprintln(w, "SERIES\tTIME\tVALUE")
		for _, r := range rows {
			points := r.Values
			if r.Value != nil {
				points = [][]any{r.Value}
			}
			for _, p := range points {
				fmt.Fprintf(w, "%s\t%s\t%v\n", formatMetric(r.Metric), formatTime(p[0]), p[1])
			}
		}
	default: // scalar, string: [time, value]
		var p []any
		if err := json.Unmarshal(data.Result, &p); err != nil || len(p) != 2 {
			return fmt.Errorf("ts query: decode the %s: %s", data.ResultType, data.Result)
		}
		fmt.Fprintln(w, "TIME\tVALUE")
		fmt.Fprintf(w, "%s\t%v\n", formatTime(p[0]), p[1])
	}
	printWarnings(c, resp.Warnings)
	return w.Flush()
}

func tsSeries(c *cli.Context) error {
	if c.NArg() == 0 {
		return exitf("ts series: give at least one selector, e.g. 'up' or '{job=\"node\"}'")
	}
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	params := url.Values{"match[]": c.Args().Slice()}
	for _, f := range []string{"start", "end"} {
		if c.IsSet(f) {
			t, err := tsTime(f, c.String(f), time.Now())
			if err != nil {
				return err
			}
			params.Set(f, t)
		}
	}
	body, resp, err := cn.promGet(c.Context, "/api/v1/series", params)
	if err != nil {
		return err
	}
	if cn.json {
		return writeLine(c, body)
	}
	var sets []map[string]string
	if err := json.Unmarshal(resp.Data, &sets); err != nil {
		return fmt.Errorf("ts series: decode the answer: %w", err)
	}
	for _, s := range sets {
		fmt.Fprintln(stdoutOf(c), formatMetric(s))
	}
	return nil
}

func tsLabels(c *cli.Context) error {
	if c.NArg() > 1 {
		return exitf("ts labels: want at most one label name, got %d arguments", c.NArg())
	}
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	path := "/api/v1/labels"
	if c.NArg() == 1 {
		path = "/api/v1/label/" + url.PathEscape(c.Args().First()) + "/values"
	}
	body, resp, err := cn.promGet(c.Context, path, url.Values{"match[]": c.StringSlice("match")})
	if err != nil {
		return err
	}
	if cn.json {
		return writeLine(c, body)
	}
	var names []string
	if err := json.Unmarshal(resp.Data, &names); err != nil {
		return fmt.Errorf("ts labels: decode the answer: %w", err)
	}
	for _, n := range names {
		fmt.Fprintln(stdoutOf(c), n)
	}
	return nil
}

// formatMetric prints a label set the way PromQL writes it:
// name{a="b", c="d"}.
func formatMetric(m map[string]string) string {
	name := m["__name__"]
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "__name__" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(m[k])
	}
	if len(parts) == 0 && name != "" {
		return name
	}
	return name + "{" + strings.Join(parts, ", ") + "}"
}

// formatTime prints an API timestamp (unix seconds) as RFC 3339 UTC.
func formatTime(v any) string {
	f, ok := v.(float64)
	if !ok {
		return fmt.Sprint(v)
	}
	return time.UnixMilli(int64(f*1000 + 0.5)).UTC().Format("2006-01-02T15:04:05.000Z")
}

func printWarnings(c *cli.Context, warns []string) {
	for _, w := range warns {
		fmt.Fprintln(c.App.ErrWriter, "Warning:", w)
	}
}

func writeLine(c *cli.Context, b []byte) error {
	_, err := stdoutOf(c).Write(append(bytes.TrimSpace(b), '\n'))
	return err
}
