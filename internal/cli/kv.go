package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/gen/mvccpb"
)

func kvCommand() *cli.Command {
	return &cli.Command{
		Name:  "kv",
		Usage: "read and write Chainfire keys (etcd v3 API)",
		Subcommands: []*cli.Command{
			{
				Name: "put", Usage: "put KEY VALUE: write a key", ArgsUsage: "KEY VALUE",
				Flags: append(clientFlags(),
					&cli.Int64Flag{Name: "lease", Usage: "attach the key to this lease ID (hex or decimal as etcdctl prints it: decimal)"},
					&cli.BoolFlag{Name: "prev-kv", Usage: "print the previous value"}),
				Action: kvPut,
			},
			{
				Name: "get", Usage: "get KEY [END]: print a key's value (several keys with --prefix or END)", ArgsUsage: "KEY [END]",
				Flags: append(clientFlags(), rangeFlags()...), Action: kvGet,
			},
			{
				Name: "range", Usage: "range START [END]: print keys and values in [START, END) (all keys from START without END)", ArgsUsage: "START [END]",
				Flags: append(clientFlags(), rangeFlags()...), Action: kvRange,
			},
			{
				Name: "del", Aliases: []string{"delete"}, Usage: "del KEY [END]: delete a key (or a range/prefix); prints how many were deleted", ArgsUsage: "KEY [END]",
				Flags: append(clientFlags(),
					&cli.BoolFlag{Name: "prefix", Usage: "delete every key with the prefix KEY"},
					&cli.BoolFlag{Name: "prev-kv", Usage: "print the deleted keys and values"}),
				Action: kvDel,
			},
			{
				Name: "watch", Usage: "watch KEY [END]: print changes as they happen (Ctrl-C stops)", ArgsUsage: "KEY [END]",
				Flags: append(clientFlags(),
					&cli.BoolFlag{Name: "prefix", Usage: "watch every key with the prefix KEY"},
					&cli.Int64Flag{Name: "rev", Usage: "start at this revision (default: only new changes)"},
					&cli.BoolFlag{Name: "prev-kv", Usage: "also print the previous value"},
					&cli.IntFlag{Name: "count", Usage: "exit after this many events (0 = never)"}),
				Action: kvWatch,
			},
			{
				Name: "txn", Usage: "run a transaction read from stdin in etcdctl's format (compares, blank line, success ops, blank line, failure ops)",
				Flags: clientFlags(), Action: kvTxn,
			},
		},
	}
}

func rangeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "prefix", Usage: "every key with the prefix KEY"},
		&cli.Int64Flag{Name: "limit", Usage: "at most this many keys"},
		&cli.Int64Flag{Name: "rev", Usage: "read at this revision"},
		&cli.BoolFlag{Name: "keys-only", Usage: "print keys only"},
		&cli.BoolFlag{Name: "count-only", Usage: "print the number of keys only"},
		&cli.BoolFlag{Name: "print-value-only", Usage: "print values only"},
		&cli.BoolFlag{Name: "serializable", Usage: "read the local replica without a quorum round trip (may be stale)"},
	}
}

// prefixEnd returns the range end that selects every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

// keyRange reads KEY [END] and --prefix.
func keyRange(c *cli.Context) ([]byte, []byte, error) {
	if c.NArg() < 1 || c.NArg() > 2 {
		return nil, nil, exitf("%s: want KEY [END], got %d arguments", c.Command.Name, c.NArg())
	}
	key := []byte(c.Args().Get(0))
	var end []byte
	switch {
	case c.NArg() == 2:
		end = []byte(c.Args().Get(1))
	case c.Bool("prefix"):
		end = prefixEnd(key)
	}
	return key, end, nil
}

func (cn *conn) print(w io.Writer, m proto.Message, simple func()) error {
	if cn.json {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	simple()
	return nil
}

func kvPut(c *cli.Context) error {
	if c.NArg() != 2 {
		return exitf("put: want KEY VALUE, got %d arguments", c.NArg())
	}
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	req := &etcdserverpb.PutRequest{Key: []byte(c.Args().Get(0)), Value: []byte(c.Args().Get(1)), Lease: c.Int64("lease"), PrevKv: c.Bool("prev-kv")}
	resp, err := call(c.Context, cn, etcdserverpbconnect.NewKVClient, req, etcdserverpbconnect.KVClient.Put)
	if err != nil {
		return err
	}
	w := stdoutOf(c)
	return cn.print(w, resp, func() {
		fmt.Fprintln(w, "OK")
		if resp.PrevKv != nil {
			printKV(w, resp.PrevKv, false, false)
		}
	})
}

// call runs one unary RPC, built by newClient, on the first endpoint that
// answers.
func call[C, Req, Resp any](ctx context.Context, cn *conn, newClient func(connect.HTTPClient, string, ...connect.ClientOption) C, req *Req,
	method func(C, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error),
) (*Resp, error) {
	var resp *Resp
	err := cn.each(ctx, func(ctx context.Context, url string) error {
		r, err := method(newClient(cn.http, url, connect.WithGRPC()), ctx, connect.NewRequest(req))
		if err == nil {
			resp = r.Msg
		}
		return err
	})
	return resp, err
}

func rangeRequest(c *cli.Context, key, end []byte) *etcdserverpb.RangeRequest {
	return &etcdserverpb.RangeRequest{
		Key: key, RangeEnd: end, Limit: c.Int64("limit"), Revision: c.Int64("rev"),
		KeysOnly: c.Bool("keys-only"), CountOnly: c.Bool("count-only"), Serializable: c.Bool("serializable"),
	}
}

// keyRangeConn reads KEY [END] and --prefix, and connects.
func keyRangeConn(c *cli.Context) ([]byte, []byte, *conn, error) {
	key, end, err := keyRange(c)
	if err != nil {
		return nil, nil, nil, err
	}
	cn, err := newConn(c)
	return key, end, cn, err
}

// kvGet prints the value of one key (exits non-zero when it does not
// exist), or key/value pairs for a range or prefix, as etcdctl does.
func kvGet(c *cli.Context) error {
	key, end, cn, err := keyRangeConn(c)
	if err != nil {
		return err
	}
	resp, err := call(c.Context, cn, etcdserverpbconnect.NewKVClient, rangeRequest(c, key, end), etcdserverpbconnect.KVClient.Range)
	if err != nil {
		return err
	}
	w := stdoutOf(c)
	if end == nil && !cn.json && !c.Bool("count-only") {
		if len(resp.Kvs) == 0 {
			return exitf("key %q not found", key)
		}
		if c.Bool("keys-only") {
			fmt.Fprintln(w, string(resp.Kvs[0].Key))
		} else {
			fmt.Fprintln(w, string(resp.Kvs[0].Value))
		}
		return nil
	}
	return printRange(c, cn, resp)
}

func kvRange(c *cli.Context) error {
	key, end, cn, err := keyRangeConn(c)
	if err != nil {
		return err
	}
	if end == nil {
		end = []byte{0}
	}
	resp, err := call(c.Context, cn, etcdserverpbconnect.NewKVClient, rangeRequest(c, key, end), etcdserverpbconnect.KVClient.Range)
	if err != nil {
		return err
	}
	return printRange(c, cn, resp)
}

func printRange(c *cli.Context, cn *conn, resp *etcdserverpb.RangeResponse) error {
	w := stdoutOf(c)
	return cn.print(w, resp, func() {
		if c.Bool("count-only") {
			fmt.Fprintln(w, resp.Count)
			return
		}
		for _, kv := range resp.Kvs {
			printKV(w, kv, c.Bool("keys-only"), c.Bool("print-value-only"))
		}
	})
}

func printKV(w io.Writer, kv *mvccpb.KeyValue, keysOnly, valueOnly bool) {
	if !valueOnly {
		fmt.Fprintln(w, string(kv.Key))
	}
	if !keysOnly {
		fmt.Fprintln(w, string(kv.Value))
	}
}

func kvDel(c *cli.Context) error {
	key, end, cn, err := keyRangeConn(c)
	if err != nil {
		return err
	}
	req := &etcdserverpb.DeleteRangeRequest{Key: key, RangeEnd: end, PrevKv: c.Bool("prev-kv")}
	resp, err := call(c.Context, cn, etcdserverpbconnect.NewKVClient, req, etcdserverpbconnect.KVClient.DeleteRange)
	if err != nil {
		return err
	}
	w := stdoutOf(c)
	return cn.print(w, resp, func() {
		fmt.Fprintln(w, resp.Deleted)
		for _, kv := range resp.PrevKvs {
			printKV(w, kv, false, false)
		}
	})
}

// kvWatch streams events from the first reachable endpoint. Watches survive
// nothing here: a broken stream ends the command with an error, and the
// printed revisions let the caller resume with --rev.
func kvWatch(c *cli.Context) error {
	key, end, cn, err := keyRangeConn(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
	defer stop()
	create := &etcdserverpb.WatchRequest{RequestUnion: &etcdserverpb.WatchRequest_CreateRequest{CreateRequest: &etcdserverpb.WatchCreateRequest{
		Key: key, RangeEnd: end, StartRevision: c.Int64("rev"), PrevKv: c.Bool("prev-kv"),
	}}}
	var lastErr error
	for _, url := range cn.urls {
		stream := cn.watch(url).Watch(ctx)
		if err := stream.Send(create); err != nil {
			lastErr = cn.describe(ctx, url, err)
			continue
		}
		err := cn.printEvents(c, stream.Receive)
		_ = stream.CloseRequest()
		_ = stream.CloseResponse()
		if ctx.Err() != nil || err == nil {
			return nil
		}
		if !retryable(err) {
			return cn.describe(ctx, url, err)
		}
		lastErr = cn.describe(ctx, url, err)
	}
	return lastErr
}

func (cn *conn) printEvents(c *cli.Context, recv func() (*etcdserverpb.WatchResponse, error)) error {
	w := stdoutOf(c)
	seen, max := 0, c.Int("count")
	for {
		resp, err := recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if resp.Canceled {
			return exitf("watch canceled by the server: %s (compact revision %d)", resp.CancelReason, resp.CompactRevision)
		}
		for _, ev := range resp.Events {
			_ = cn.print(w, ev, func() {
				fmt.Fprintln(w, ev.Type.String())
				printKV(w, ev.Kv, ev.Type == mvccpb.Event_DELETE, false)
				if ev.PrevKv != nil {
					printKV(w, ev.PrevKv, false, false)
				}
			})
			if seen++; max > 0 && seen >= max {
				return nil
			}
		}
	}
}
