package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/urfave/cli/v2"

	flaredb "github.com/centra-cloud/centra/flaredb/client"
)

func flaredbCommand() *cli.Command {
	return &cli.Command{
		Name:  "flaredb",
		Usage: "read and write FlareDB keys (put, get, delete, scan) and inspect its stores",
		Subcommands: []*cli.Command{
			{Name: "cluster-status", Usage: "one line per store: id, state, capacity, available (GET /pd/api/v1/stores)", Flags: clientFlags(), Action: clusterStatus},
			{
				Name: "put", Usage: "put KEY VALUE: write a key; prints OK", ArgsUsage: "KEY VALUE",
				Flags: flaredbFlags(), Action: flaredbPut,
			},
			{
				Name: "get", Usage: "get KEY: print a key's value (exit status 1 when it does not exist)", ArgsUsage: "KEY",
				Flags: flaredbFlags(), Action: flaredbGet,
			},
			{
				Name: "delete", Aliases: []string{"del"}, Usage: "delete KEY [END]: delete a key, or the keys in [KEY, END) or with the prefix KEY; prints OK", ArgsUsage: "KEY [END]",
				Flags:  append(flaredbFlags(), &cli.BoolFlag{Name: "prefix", Usage: "delete every key with the prefix KEY"}),
				Action: flaredbDelete,
			},
			{
				Name: "scan", Usage: "scan [START [END]]: print KEY<TAB>VALUE lines of [START, END) in key order (the whole namespace without arguments)", ArgsUsage: "[START [END]]",
				Flags: append(flaredbFlags(),
					&cli.IntFlag{Name: "limit", Usage: "at most this many keys (0: no limit)"},
					&cli.BoolFlag{Name: "reverse", Usage: "descending key order, from just below END"},
					&cli.BoolFlag{Name: "keys-only", Usage: "print keys only"},
					&cli.BoolFlag{Name: "prefix", Usage: "every key with the prefix START"}),
				Action: flaredbScan,
			},
		},
	}
}

// pdStores is the part of GET /pd/api/v1/stores that cluster-status prints.
type pdStores struct {
	Count  int `json:"count"`
	Stores []struct {
		Store struct {
			ID        uint64 `json:"id"`
			Address   string `json:"address"`
			StateName string `json:"state_name"`
		} `json:"store"`
		Status struct {
			Capacity  string `json:"capacity"`
			Available string `json:"available"`
		} `json:"status"`
	} `json:"stores"`
}

func clusterStatus(c *cli.Context) error {
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	body, err := cn.getJSON(c.Context, "/pd/api/v1/stores?state=0&state=1&state=2")
	if err != nil {
		return err
	}
	w := stdoutOf(c)
	if cn.json {
		_, err := w.Write(append(body, '\n'))
		return err
	}
	var st pdStores
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("cluster-status: decode /pd/api/v1/stores: %w", err)
	}
	for _, s := range st.Stores {
		fmt.Fprintf(w, "store_id=%d, state=%s, capacity=%s, available=%s, address=%s\n", s.Store.ID, s.Store.StateName, s.Status.Capacity, s.Status.Available, s.Store.Address)
	}
	return nil
}

// flaredbFlags are the flags of the FlareDB key commands: the connection
// flags and the namespace.
func flaredbFlags() []cli.Flag {
	return append(clientFlags(),
		&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Value: "default", Usage: "namespace of the keys"})
}

// flaredbConn connects a FlareDB client to the endpoints. Reads prefer
// the replicas of the first endpoint's store, so reading an eventual
// namespace from a store's own endpoint reads its replica. The context is
// bounded by --timeout.
func flaredbConn(c *cli.Context) (*flaredb.Client, *conn, context.Context, context.CancelFunc, error) {
	cn, err := newConn(c)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	var opts []flaredb.Option
	opts = append(opts, flaredb.WithHTTPClient(cn.http))
	if u, err := url.Parse(cn.urls[0]); err == nil && u.Host != "" {
		opts = append(opts, flaredb.WithLocalStore(u.Host))
	}
	fc, err := flaredb.New(strings.Join(cn.urls, ","), opts...)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, cn.timeout)
	return fc, cn, ctx, func() { cancel(); _ = fc.Close() }, nil
}

// flaredbResult is the -o json form of put, get and delete; keys and
// values are base64, as in the other commands' JSON.
type flaredbResult struct {
	Namespace string `json:"namespace"`
	Key       []byte `json:"key"`
	End       []byte `json:"end,omitempty"`
	Value     []byte `json:"value,omitempty"`
	Found     *bool  `json:"found,omitempty"`
	OK        bool   `json:"ok"`
}

func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func flaredbPut(c *cli.Context) error {
	if c.NArg() != 2 {
		return exitf("put: want KEY VALUE, got %d arguments", c.NArg())
	}
	fc, cn, ctx, done, err := flaredbConn(c)
	if err != nil {
		return err
	}
	defer done()
	ns, key := c.String("namespace"), []byte(c.Args().Get(0))
	if err := fc.Put(ctx, ns, key, []byte(c.Args().Get(1))); err != nil {
		return err
	}
	w := stdoutOf(c)
	if cn.json {
		return printJSON(w, flaredbResult{Namespace: ns, Key: key, OK: true})
	}
	_, err = fmt.Fprintln(w, "OK")
	return err
}

// flaredbGet prints the value of a key. A missing key is an error (exit
// status 1) naming the key and namespace, except with -o json, which
// prints "found": false.
func flaredbGet(c *cli.Context) error {
	if c.NArg() != 1 {
		return exitf("get: want KEY, got %d arguments", c.NArg())
	}
	fc, cn, ctx, done, err := flaredbConn(c)
	if err != nil {
		return err
	}
	defer done()
	ns, key := c.String("namespace"), []byte(c.Args().Get(0))
	value, found, err := fc.Get(ctx, ns, key)
	if err != nil {
		return err
	}
	w := stdoutOf(c)
	if cn.json {
		return printJSON(w, flaredbResult{Namespace: ns, Key: key, Value: value, Found: &found, OK: true})
	}
	if !found {
		return exitf("key %q not found in namespace %q", key, ns)
	}
	_, err = fmt.Fprintln(w, string(value))
	return err
}

// flaredbRange reads [START [END]] and --prefix; an empty end is the end
// of the namespace.
func flaredbRange(c *cli.Context, minArgs int) ([]byte, []byte, error) {
	if c.NArg() < minArgs || c.NArg() > 2 {
		return nil, nil, exitf("%s: want %s, got %d arguments", c.Command.Name, c.Command.ArgsUsage, c.NArg())
	}
	start, end := []byte(c.Args().Get(0)), []byte(c.Args().Get(1))
	if c.Bool("prefix") {
		if c.NArg() == 2 {
			return nil, nil, exitf("%s: --prefix takes no END", c.Command.Name)
		}
		end = namespacePrefixEnd(start)
	}
	return start, end, nil
}

// namespacePrefixEnd returns the end of the keys with prefix p: p with its
// last byte below 0xff incremented, or nil (the end of the namespace).
func namespacePrefixEnd(p []byte) []byte {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] < 0xff {
			end := append([]byte(nil), p[:i+1]...)
			end[i]++
			return end
		}
	}
	return nil
}

func flaredbDelete(c *cli.Context) error {
	start, end, err := flaredbRange(c, 1)
	if err != nil {
		return err
	}
	fc, cn, ctx, done, err := flaredbConn(c)
	if err != nil {
		return err
	}
	defer done()
	ns := c.String("namespace")
	if c.NArg() == 1 && !c.Bool("prefix") {
		err = fc.Delete(ctx, ns, start)
	} else {
		err = fc.DeleteRange(ctx, ns, start, end)
	}
	if err != nil {
		return err
	}
	w := stdoutOf(c)
	if cn.json {
		return printJSON(w, flaredbResult{Namespace: ns, Key: start, End: end, OK: true})
	}
	_, err = fmt.Fprintln(w, "OK")
	return err
}

// flaredbScan prints the pairs as they stream from the stores, one
// KEY<TAB>VALUE line each (KEY with --keys-only); -o json collects them in
// one object.
func flaredbScan(c *cli.Context) error {
	start, end, err := flaredbRange(c, 0)
	if err != nil {
		return err
	}
	if c.Int("limit") < 0 {
		return exitf("scan: --limit %d: want 0 (no limit) or more", c.Int("limit"))
	}
	fc, cn, ctx, done, err := flaredbConn(c)
	if err != nil {
		return err
	}
	defer done()
	ns := c.String("namespace")
	opts := flaredb.ScanOptions{Limit: c.Int("limit"), KeyOnly: c.Bool("keys-only"), Reverse: c.Bool("reverse")}
	w := bufio.NewWriter(stdoutOf(c))
	defer w.Flush()
	type pair struct {
		Key   []byte `json:"key"`
		Value []byte `json:"value,omitempty"`
	}
	var pairs []pair
	err = fc.ScanFunc(ctx, ns, start, end, opts, func(p flaredb.KvPair) bool {
		switch {
		case cn.json:
			pairs = append(pairs, pair{p.Key, p.Value})
		case opts.KeyOnly:
			fmt.Fprintf(w, "%s\n", p.Key)
		default:
			fmt.Fprintf(w, "%s\t%s\n", p.Key, p.Value)
		}
		return true
	})
	if err != nil {
		return err
	}
	if cn.json {
		return printJSON(w, struct {
			Namespace string `json:"namespace"`
			Count     int    `json:"count"`
			Pairs     []pair `json:"pairs"`
		}{ns, len(pairs), pairs})
	}
	return nil
}
