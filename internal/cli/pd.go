package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

const pdAPI = "/pd/api/v1"

// pdCommand is pd-ctl's most used commands over PD's HTTP API. Every
// command prints a table, or PD's JSON with -o json.
func pdCommand() *cli.Command {
	flags := clientFlags()
	return &cli.Command{
		Name:  "pd",
		Usage: "placement driver: stores, regions, operators, schedulers and config (pd-ctl's commands over /pd/api/v1)",
		Subcommands: []*cli.Command{
			{
				Name: "store", Usage: "store [ID]: list the stores (Tombstones too), or show one", ArgsUsage: "[ID]", Flags: flags, Action: pdStoreShow,
				Subcommands: []*cli.Command{
					{Name: "delete", Usage: "delete ID: take a store offline; its replicas move away, then it becomes Tombstone", ArgsUsage: "ID",
						Flags: append(clientFlags(), &cli.BoolFlag{Name: "force", Usage: "the store is gone for good (skips the max-replicas check)"}), Action: pdStoreDelete},
					{Name: "cancel-delete", Usage: "cancel-delete ID: bring an Offline store back Up", ArgsUsage: "ID", Flags: flags, Action: pdStoreCancelDelete},
					{Name: "limit", Usage: "limit [ID|all RATE [add-peer|remove-peer]]: show the store limits, or set one (steps per minute)", ArgsUsage: "[ID|all RATE [TYPE]]", Flags: flags, Action: pdStoreLimit},
					{Name: "weight", Usage: "weight ID LEADER REGION: set a store's leader and region weights", ArgsUsage: "ID LEADER REGION", Flags: flags, Action: pdStoreWeight},
					{Name: "remove-tombstone", Usage: "delete the records of Tombstone stores", Flags: flags, Action: pdRemoveTombstone},
				},
			},
			{
				Name: "region", Usage: "region [ID]: list the regions, or show one", ArgsUsage: "[ID]", Flags: flags, Action: pdRegions,
				Subcommands: []*cli.Command{
					{Name: "check", Usage: "check pending-peer|down-peer|miss-peer|extra-peer|learner-peer: the regions with that problem", ArgsUsage: "KIND", Flags: flags, Action: pdRegionCheck},
				},
			},
			{
				Name: "operator", Usage: "show, add and remove operators",
				Subcommands: []*cli.Command{
					{Name: "show", Usage: "show [admin|leader|region|replica]: the live operators", ArgsUsage: "[KIND]", Flags: flags, Action: pdOperatorShow},
					{Name: "records", Usage: "the finished operators (bounded history)", Flags: flags, Action: pdOperatorRecords},
					{Name: "add", Usage: "add NAME ARGS: transfer-leader REGION STORE | transfer-region REGION STORE... | transfer-peer REGION FROM TO | add-peer REGION STORE | add-learner REGION STORE | remove-peer REGION STORE | scatter-region REGION | split-region REGION [--policy approximate|scan|usekey --keys HEXKEY]",
						ArgsUsage: "NAME ARGS...", Flags: append(clientFlags(),
							&cli.StringFlag{Name: "policy", Usage: "split-region: approximate or scan (halfway), usekey (at --keys)"},
							&cli.StringSliceFlag{Name: "keys", Usage: "split-region usekey: the split key, hex of an encoded region key (as start_key shows)"}),
						Action: pdOperatorAdd},
					{Name: "remove", Usage: "remove REGION: cancel the region's operator", ArgsUsage: "REGION", Flags: flags, Action: pdOperatorRemove},
				},
			},
			{
				Name: "scheduler", Usage: "show, add, remove and pause schedulers",
				Subcommands: []*cli.Command{
					{Name: "show", Usage: "the enabled schedulers (--status paused: only the paused ones)", Flags: append(clientFlags(), &cli.StringFlag{Name: "status", Usage: "paused or disabled"}), Action: pdSchedulerShow},
					{Name: "add", Usage: "add NAME [STORE_ID]: enable a scheduler (evict-leader-scheduler and grant-leader-scheduler take a store)", ArgsUsage: "NAME [STORE_ID]", Flags: flags, Action: pdSchedulerAdd},
					{Name: "remove", Usage: "remove NAME: disable a scheduler (evict-leader-scheduler-ID: only that store's)", ArgsUsage: "NAME", Flags: flags, Action: pdSchedulerRemove},
					{Name: "pause", Usage: "pause NAME SECONDS: pause a scheduler (0 resumes)", ArgsUsage: "NAME SECONDS", Flags: flags, Action: pdSchedulerPause},
					{Name: "resume", Usage: "resume NAME: resume a paused scheduler", ArgsUsage: "NAME", Flags: flags, Action: pdSchedulerResume},
				},
			},
			{
				Name: "config", Usage: "show and set the schedule and replication config",
				Subcommands: []*cli.Command{
					{Name: "show", Usage: "show [schedule|replication]: the config (both by default)", ArgsUsage: "[schedule|replication]", Flags: flags, Action: pdConfigShow},
					{Name: "set", Usage: "set KEY VALUE: change one key (schedule or replication, found by name)", ArgsUsage: "KEY VALUE", Flags: flags, Action: pdConfigSet},
				},
			},
		},
	}
}

// pdCall runs one API call and prints the result: the raw JSON with -o
// json, else what show makes of the body.
func pdCall(c *cli.Context, method, path string, body any, show func(w io.Writer, body []byte) error) error {
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	b, err := cn.doJSON(c.Context, method, pdAPI+path, body)
	if err != nil {
		return err
	}
	w := stdoutOf(c)
	if cn.json {
		var v any
		if json.Unmarshal(b, &v) != nil {
			return fmt.Errorf("%s %s: the answer is not JSON: %.200s", method, path, b)
		}
		return printJSON(w, v)
	}
	return show(w, b)
}

// showMessage prints PD's JSON string answer of a mutation.
func showMessage(w io.Writer, body []byte) error {
	var s string
	if err := json.Unmarshal(body, &s); err != nil {
		s = strings.TrimSpace(string(body))
	}
	_, err := fmt.Fprintln(w, s)
	return err
}

// table writes rows under a header, aligned.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func argID(c *cli.Context, i int, what string) (uint64, error) {
	v := c.Args().Get(i)
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, exitf("%s %q: want an unsigned integer", what, v)
	}
	return id, nil
}

func wantArgs(c *cli.Context, min, max int, usage string) error {
	if n := c.NArg(); n < min || n > max {
		return exitf("%s: want %s, got %d arguments", c.Command.Name, usage, n)
	}
	return nil
}

// storeRow is the part of a /stores entry the table shows.
type storeRow struct {
	ID        uint64 `json:"id"`
	Address   string `json:"address"`
	State     string `json:"state"`
	Capacity  uint64 `json:"capacity"`
	Available uint64 `json:"available"`
	Store     struct {
		Labels []struct{ Key, Value string } `json:"labels"`
	} `json:"store"`
	Status struct {
		LeaderCount int     `json:"leader_count"`
		RegionCount int     `json:"region_count"`
		LeaderScore float64 `json:"leader_score"`
		RegionScore float64 `json:"region_score"`
		Pending     int     `json:"pending_peer_count"`
	} `json:"status"`
}

func storeTable(w io.Writer, stores []storeRow) error {
	rows := make([][]string, 0, len(stores))
	for _, s := range stores {
		var labels []string
		for _, l := range s.Store.Labels {
			labels = append(labels, l.Key+"="+l.Value)
		}
		rows = append(rows, []string{strconv.FormatUint(s.ID, 10), s.Address, s.State,
			strconv.Itoa(s.Status.LeaderCount), strconv.Itoa(s.Status.RegionCount),
			strconv.FormatFloat(s.Status.LeaderScore, 'f', -1, 64), strconv.FormatFloat(s.Status.RegionScore, 'f', -1, 64),
			strconv.Itoa(s.Status.Pending), humanSize(s.Capacity), humanSize(s.Available), strings.Join(labels, ",")})
	}
	return table(w, []string{"ID", "ADDRESS", "STATE", "LEADERS", "REGIONS", "LEADER_SCORE", "REGION_SCORE", "PENDING", "CAPACITY", "AVAILABLE", "LABELS"}, rows)
}

// humanSize is bytes in binary units with one decimal.
func humanSize(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%.1f%s", f, units[i])
}

func pdStoreShow(c *cli.Context) error {
	if err := wantArgs(c, 0, 1, "[ID]"); err != nil {
		return err
	}
	if c.NArg() == 1 {
		id, err := argID(c, 0, "store id")
		if err != nil {
			return err
		}
		return pdCall(c, "GET", fmt.Sprintf("/store/%d", id), nil, func(w io.Writer, b []byte) error {
			var s storeRow
			if err := json.Unmarshal(b, &s); err != nil {
				return err
			}
			return storeTable(w, []storeRow{s})
		})
	}
	return pdCall(c, "GET", "/stores?state=0&state=1&state=2", nil, func(w io.Writer, b []byte) error {
		var out struct{ Stores []storeRow }
		if err := json.Unmarshal(b, &out); err != nil {
			return err
		}
		return storeTable(w, out.Stores)
	})
}

func pdStoreDelete(c *cli.Context) error {
	if err := wantArgs(c, 1, 1, "ID"); err != nil {
		return err
	}
	id, err := argID(c, 0, "store id")
	if err != nil {
		return err
	}
	path := fmt.Sprintf("/store/%d", id)
	if c.Bool("force") {
		path += "?force=true"
	}
	return pdCall(c, "DELETE", path, nil, showMessage)
}

func pdStoreCancelDelete(c *cli.Context) error {
	if err := wantArgs(c, 1, 1, "ID"); err != nil {
		return err
	}
	id, err := argID(c, 0, "store id")
	if err != nil {
		return err
	}
	return pdCall(c, "POST", fmt.Sprintf("/store/%d/state?state=Up", id), nil, showMessage)
}

func pdStoreLimit(c *cli.Context) error {
	if err := wantArgs(c, 0, 3, "[ID|all RATE [add-peer|remove-peer]]"); err != nil {
		return err
	}
	if c.NArg() == 0 {
		return pdCall(c, "GET", "/stores/limit", nil, func(w io.Writer, b []byte) error {
			var limits map[string]struct {
				AddPeer    float64 `json:"add-peer"`
				RemovePeer float64 `json:"remove-peer"`
			}
			if err := json.Unmarshal(b, &limits); err != nil {
				return err
			}
			ids := make([]string, 0, len(limits))
			for id := range limits {
				ids = append(ids, id)
			}
			sort.Slice(ids, func(i, j int) bool { return len(ids[i]) < len(ids[j]) || len(ids[i]) == len(ids[j]) && ids[i] < ids[j] })
			var rows [][]string
			for _, id := range ids {
				l := limits[id]
				rows = append(rows, []string{id, strconv.FormatFloat(l.AddPeer, 'f', -1, 64), strconv.FormatFloat(l.RemovePeer, 'f', -1, 64)})
			}
			return table(w, []string{"STORE", "ADD_PEER/MIN", "REMOVE_PEER/MIN"}, rows)
		})
	}
	if c.NArg() < 2 {
		return exitf("limit: want ID|all RATE [add-peer|remove-peer] to set a limit")
	}
	rate, err := strconv.ParseFloat(c.Args().Get(1), 64)
	if err != nil || rate <= 0 {
		return exitf("limit: rate %q: want a positive number of steps per minute", c.Args().Get(1))
	}
	body := map[string]any{"rate": rate}
	if t := c.Args().Get(2); t != "" {
		body["type"] = t
	}
	path := "/stores/limit"
	if c.Args().First() != "all" {
		id, err := argID(c, 0, "store id")
		if err != nil {
			return err
		}
		path = fmt.Sprintf("/store/%d/limit", id)
	}
	return pdCall(c, "POST", path, body, showMessage)
}

func pdStoreWeight(c *cli.Context) error {
	if err := wantArgs(c, 3, 3, "ID LEADER REGION"); err != nil {
		return err
	}
	id, err := argID(c, 0, "store id")
	if err != nil {
		return err
	}
	var w [2]float64
	for i := range w {
		if w[i], err = strconv.ParseFloat(c.Args().Get(i+1), 64); err != nil || w[i] <= 0 {
			return exitf("weight: %q: want a positive number", c.Args().Get(i+1))
		}
	}
	return pdCall(c, "POST", fmt.Sprintf("/store/%d/weight", id), map[string]float64{"leader": w[0], "region": w[1]}, showMessage)
}

func pdRemoveTombstone(c *cli.Context) error {
	return pdCall(c, "DELETE", "/stores/remove-tombstone", nil, showMessage)
}

// regionRow is the part of a region the table shows.
type regionRow struct {
	ID       uint64 `json:"id"`
	StartKey string `json:"start_key"`
	EndKey   string `json:"end_key"`
	Epoch    struct {
		ConfVer uint64 `json:"conf_ver"`
		Version uint64 `json:"version"`
	} `json:"epoch"`
	Peers []struct {
		ID       uint64 `json:"id"`
		StoreID  uint64 `json:"store_id"`
		RoleName string `json:"role_name"`
	} `json:"peers"`
	Leader struct {
		StoreID uint64 `json:"store_id"`
	} `json:"leader"`
	DownPeers    []json.RawMessage `json:"down_peers"`
	PendingPeers []json.RawMessage `json:"pending_peers"`
	Size         int64             `json:"approximate_size"`
}

func regionTable(w io.Writer, regions []regionRow) error {
	rows := make([][]string, 0, len(regions))
	for _, r := range regions {
		var peers []string
		for _, p := range r.Peers {
			s := strconv.FormatUint(p.StoreID, 10)
			if p.RoleName == "Learner" {
				s += "(L)"
			}
			peers = append(peers, s)
		}
		rows = append(rows, []string{strconv.FormatUint(r.ID, 10), r.StartKey, r.EndKey,
			fmt.Sprintf("%d/%d", r.Epoch.ConfVer, r.Epoch.Version), strconv.FormatUint(r.Leader.StoreID, 10), strings.Join(peers, ","),
			strconv.Itoa(len(r.PendingPeers)), strconv.Itoa(len(r.DownPeers)), strconv.FormatInt(r.Size, 10)})
	}
	return table(w, []string{"ID", "START_KEY", "END_KEY", "CONF_VER/VERSION", "LEADER_STORE", "PEER_STORES", "PENDING", "DOWN", "SIZE_MIB"}, rows)
}

func pdRegions(c *cli.Context) error {
	if err := wantArgs(c, 0, 1, "[ID]"); err != nil {
		return err
	}
	if c.NArg() == 1 {
		id, err := argID(c, 0, "region id")
		if err != nil {
			return err
		}
		return pdCall(c, "GET", fmt.Sprintf("/region/id/%d", id), nil, func(w io.Writer, b []byte) error {
			var r regionRow
			if err := json.Unmarshal(b, &r); err != nil {
				return err
			}
			return regionTable(w, []regionRow{r})
		})
	}
	return pdCall(c, "GET", "/regions", nil, func(w io.Writer, b []byte) error {
		var out struct{ Regions []regionRow }
		if err := json.Unmarshal(b, &out); err != nil {
			return err
		}
		return regionTable(w, out.Regions)
	})
}

// pdRegionCheck lists the regions with a problem, as pd-ctl's region
// check: miss-peer and extra-peer compare with max-replicas.
func pdRegionCheck(c *cli.Context) error {
	if err := wantArgs(c, 1, 1, "pending-peer|down-peer|miss-peer|extra-peer|learner-peer"); err != nil {
		return err
	}
	kind := c.Args().First()
	var repl struct {
		MaxReplicas int `json:"max-replicas"`
	}
	var match func(r regionRow) bool
	switch kind {
	case "pending-peer":
		match = func(r regionRow) bool { return len(r.PendingPeers) > 0 }
	case "down-peer":
		match = func(r regionRow) bool { return len(r.DownPeers) > 0 }
	case "miss-peer":
		match = func(r regionRow) bool { return len(r.Peers) < repl.MaxReplicas }
	case "extra-peer":
		match = func(r regionRow) bool { return len(r.Peers) > repl.MaxReplicas }
	case "learner-peer":
		match = func(r regionRow) bool {
			for _, p := range r.Peers {
				if p.RoleName == "Learner" {
					return true
				}
			}
			return false
		}
	default:
		return exitf("check: %q: want pending-peer, down-peer, miss-peer, extra-peer or learner-peer", kind)
	}
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	if b, err := cn.getJSON(c.Context, pdAPI+"/config/replicate"); err != nil {
		return err
	} else if err := json.Unmarshal(b, &repl); err != nil {
		return err
	}
	b, err := cn.getJSON(c.Context, pdAPI+"/regions")
	if err != nil {
		return err
	}
	var all struct{ Regions []json.RawMessage }
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	var rows []regionRow
	raws := []json.RawMessage{}
	for _, raw := range all.Regions {
		var r regionRow
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		if match(r) {
			rows = append(rows, r)
			raws = append(raws, raw)
		}
	}
	w := stdoutOf(c)
	if cn.json {
		return printJSON(w, map[string]any{"count": len(raws), "regions": raws})
	}
	return regionTable(w, rows)
}

// showLines prints a JSON array of strings one per line.
func showLines(w io.Writer, b []byte) error {
	var lines []string
	if err := json.Unmarshal(b, &lines); err != nil {
		return err
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	return nil
}

func pdOperatorShow(c *cli.Context) error {
	if err := wantArgs(c, 0, 1, "[admin|leader|region|replica]"); err != nil {
		return err
	}
	path := "/operators"
	if k := c.Args().First(); k != "" {
		path += "?kind=" + url.QueryEscape(k)
	}
	return pdCall(c, "GET", path, nil, showLines)
}

func pdOperatorRecords(c *cli.Context) error {
	return pdCall(c, "GET", "/operators/records", nil, showLines)
}

// pdOperatorAdd builds POST /operators' body from pd-ctl's arguments.
func pdOperatorAdd(c *cli.Context) error {
	name := c.Args().First()
	if c.NArg() < 3 && ((name != "scatter-region" && name != "split-region") || c.NArg() < 2) {
		return exitf("add: want NAME REGION ARGS..., e.g. add transfer-leader 2 4")
	}
	ids := make([]uint64, 0, c.NArg()-1)
	for i := 1; i < c.NArg(); i++ {
		id, err := argID(c, i, "id")
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	body := map[string]any{"name": name, "region_id": ids[0]}
	n := len(ids) - 1
	switch name {
	case "transfer-leader":
		body["to_store_id"] = ids[1]
	case "transfer-region":
		body["to_store_ids"] = ids[1:]
		n = 1
	case "transfer-peer":
		if n != 2 {
			return exitf("add transfer-peer: want REGION FROM_STORE TO_STORE")
		}
		body["from_store_id"], body["to_store_id"] = ids[1], ids[2]
		n = 1
	case "add-peer", "add-learner", "remove-peer":
		body["store_id"] = ids[1]
	case "scatter-region", "split-region":
		if n != 0 {
			return exitf("add %s: want REGION", name)
		}
		if name == "split-region" {
			body["policy"], body["keys"] = c.String("policy"), c.StringSlice("keys")
		}
		n = 1
	default:
		return exitf("add: unknown operator %q: want transfer-leader, transfer-region, transfer-peer, add-peer, add-learner, remove-peer, scatter-region or split-region", name)
	}
	if n != 1 {
		return exitf("add %s: want REGION STORE", name)
	}
	return pdCall(c, "POST", "/operators", body, showMessage)
}

func pdOperatorRemove(c *cli.Context) error {
	if err := wantArgs(c, 1, 1, "REGION"); err != nil {
		return err
	}
	id, err := argID(c, 0, "region id")
	if err != nil {
		return err
	}
	return pdCall(c, "DELETE", fmt.Sprintf("/operators/%d", id), nil, showMessage)
}

func pdSchedulerShow(c *cli.Context) error {
	path := "/schedulers"
	if st := c.String("status"); st != "" {
		path += "?status=" + url.QueryEscape(st)
	}
	return pdCall(c, "GET", path, nil, showLines)
}

func pdSchedulerAdd(c *cli.Context) error {
	if err := wantArgs(c, 1, 2, "NAME [STORE_ID]"); err != nil {
		return err
	}
	body := map[string]any{"name": c.Args().First()}
	if c.NArg() == 2 {
		id, err := argID(c, 1, "store id")
		if err != nil {
			return err
		}
		body["store_id"] = id
	}
	return pdCall(c, "POST", "/schedulers", body, showMessage)
}

func pdSchedulerRemove(c *cli.Context) error {
	if err := wantArgs(c, 1, 1, "NAME"); err != nil {
		return err
	}
	return pdCall(c, "DELETE", "/schedulers/"+url.PathEscape(c.Args().First()), nil, showMessage)
}

func pdSchedulerPause(c *cli.Context) error {
	if err := wantArgs(c, 2, 2, "NAME SECONDS"); err != nil {
		return err
	}
	d, err := strconv.ParseInt(c.Args().Get(1), 10, 64)
	if err != nil || d < 0 {
		return exitf("pause: seconds %q: want a non-negative integer", c.Args().Get(1))
	}
	return pdCall(c, "POST", "/schedulers/"+url.PathEscape(c.Args().First()), map[string]int64{"delay": d}, showMessage)
}

func pdSchedulerResume(c *cli.Context) error {
	if err := wantArgs(c, 1, 1, "NAME"); err != nil {
		return err
	}
	return pdCall(c, "POST", "/schedulers/"+url.PathEscape(c.Args().First()), map[string]int64{"delay": 0}, showMessage)
}

// showIndented prints a JSON document indented.
func showIndented(w io.Writer, b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(out))
	return err
}

func pdConfigShow(c *cli.Context) error {
	if err := wantArgs(c, 0, 1, "[schedule|replication]"); err != nil {
		return err
	}
	switch c.Args().First() {
	case "schedule":
		return pdCall(c, "GET", "/config/schedule", nil, showIndented)
	case "replication":
		return pdCall(c, "GET", "/config/replicate", nil, showIndented)
	case "":
	default:
		return exitf("show: %q: want schedule or replication", c.Args().First())
	}
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	both := map[string]json.RawMessage{}
	for name, path := range map[string]string{"schedule": "/config/schedule", "replication": "/config/replicate"} {
		if both[name], err = cn.getJSON(c.Context, pdAPI+path); err != nil {
			return err
		}
	}
	b, err := json.Marshal(both)
	if err != nil {
		return err
	}
	if cn.json {
		_, err = fmt.Fprintln(stdoutOf(c), string(b))
		return err
	}
	return showIndented(stdoutOf(c), b)
}

// pdConfigSet sets one key in whichever config has it. VALUE is taken as
// JSON when it parses (numbers, true/false, objects), else as a string.
func pdConfigSet(c *cli.Context) error {
	if err := wantArgs(c, 2, 2, "KEY VALUE"); err != nil {
		return err
	}
	key, raw := c.Args().Get(0), c.Args().Get(1)
	var value any
	if json.Unmarshal([]byte(raw), &value) != nil {
		value = raw
	}
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	path := "/config/schedule"
	b, err := cn.getJSON(c.Context, pdAPI+"/config/replicate")
	if err != nil {
		return err
	}
	var repl map[string]json.RawMessage
	if err := json.Unmarshal(b, &repl); err != nil {
		return err
	}
	if _, ok := repl[key]; ok {
		path = "/config/replicate"
	}
	return pdCall(c, "POST", path, map[string]any{key: value}, showMessage)
}
