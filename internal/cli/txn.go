package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
)

// kvTxn reads a transaction in etcdctl's interactive format from stdin:
//
//	compares, one per line:   value("k") = "v" | version("k") > "2" | mod(...) | create(...) | lease(...)
//	(blank line)
//	success operations:       put k v | get k [end] | del k [end]
//	(blank line)
//	failure operations
func kvTxn(c *cli.Context) error {
	req, err := parseTxn(os.Stdin)
	if err != nil {
		return err
	}
	cn, err := newConn(c)
	if err != nil {
		return err
	}
	resp, err := call(c.Context, cn, etcdserverpbconnect.NewKVClient, req, etcdserverpbconnect.KVClient.Txn)
	if err != nil {
		return err
	}
	w := stdoutOf(c)
	return cn.print(w, resp, func() {
		if resp.Succeeded {
			fmt.Fprintln(w, "SUCCESS")
		} else {
			fmt.Fprintln(w, "FAILURE")
		}
		for _, r := range resp.Responses {
			fmt.Fprintln(w)
			switch op := r.Response.(type) {
			case *etcdserverpb.ResponseOp_ResponsePut:
				fmt.Fprintln(w, "OK")
			case *etcdserverpb.ResponseOp_ResponseRange:
				for _, kv := range op.ResponseRange.Kvs {
					printKV(w, kv, false, false)
				}
			case *etcdserverpb.ResponseOp_ResponseDeleteRange:
				fmt.Fprintln(w, op.ResponseDeleteRange.Deleted)
			}
		}
	})
}

func parseTxn(r io.Reader) (*etcdserverpb.TxnRequest, error) {
	sc := bufio.NewScanner(r)
	section, line := 0, 0
	req := &etcdserverpb.TxnRequest{}
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			section++
			continue
		}
		var err error
		switch section {
		case 0:
			var cmp *etcdserverpb.Compare
			if cmp, err = parseCompare(text); err == nil {
				req.Compare = append(req.Compare, cmp)
			}
		case 1, 2:
			var op *etcdserverpb.RequestOp
			if op, err = parseOp(text); err == nil {
				if section == 1 {
					req.Success = append(req.Success, op)
				} else {
					req.Failure = append(req.Failure, op)
				}
			}
		default:
			err = fmt.Errorf("unexpected text after the failure operations")
		}
		if err != nil {
			return nil, exitf("txn line %d %q: %v", line, text, err)
		}
	}
	return req, sc.Err()
}

// fields splits a line into words, honouring Go-style double quotes.
func fields(s string) ([]string, error) {
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] == '"' {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, fmt.Errorf("bad quoted string: %v", err)
			}
			u, _ := strconv.Unquote(q)
			out = append(out, u)
			s = s[len(q):]
			continue
		}
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			i = len(s)
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return out, nil
}

func parseCompare(s string) (*etcdserverpb.Compare, error) {
	open, close := strings.Index(s, "("), strings.Index(s, ")")
	if open < 0 || close < open {
		return nil, fmt.Errorf(`want TARGET("key") OP "value", e.g. value("k") = "v"`)
	}
	keyArgs, err := fields(s[open+1 : close])
	if err != nil || len(keyArgs) != 1 {
		return nil, fmt.Errorf("want one quoted key inside the parentheses")
	}
	rest, err := fields(s[close+1:])
	if err != nil || len(rest) != 2 {
		return nil, fmt.Errorf(`want an operator (=, !=, <, >) and a quoted value after the key`)
	}
	cmp := &etcdserverpb.Compare{Key: []byte(keyArgs[0])}
	switch rest[0] {
	case "=", "==":
		cmp.Result = etcdserverpb.Compare_EQUAL
	case "!=":
		cmp.Result = etcdserverpb.Compare_NOT_EQUAL
	case "<":
		cmp.Result = etcdserverpb.Compare_LESS
	case ">":
		cmp.Result = etcdserverpb.Compare_GREATER
	default:
		return nil, fmt.Errorf("unknown operator %q: want =, !=, < or >", rest[0])
	}
	target := strings.ToLower(strings.TrimSpace(s[:open]))
	if target == "value" || target == "val" {
		cmp.Target = etcdserverpb.Compare_VALUE
		cmp.TargetUnion = &etcdserverpb.Compare_Value{Value: []byte(rest[1])}
		return cmp, nil
	}
	n, err := strconv.ParseInt(rest[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s compares with an integer, got %q", target, rest[1])
	}
	switch target {
	case "version", "ver":
		cmp.Target, cmp.TargetUnion = etcdserverpb.Compare_VERSION, &etcdserverpb.Compare_Version{Version: n}
	case "create", "c":
		cmp.Target, cmp.TargetUnion = etcdserverpb.Compare_CREATE, &etcdserverpb.Compare_CreateRevision{CreateRevision: n}
	case "mod", "m":
		cmp.Target, cmp.TargetUnion = etcdserverpb.Compare_MOD, &etcdserverpb.Compare_ModRevision{ModRevision: n}
	case "lease":
		cmp.Target, cmp.TargetUnion = etcdserverpb.Compare_LEASE, &etcdserverpb.Compare_Lease{Lease: n}
	default:
		return nil, fmt.Errorf("unknown compare target %q: want value, version, create, mod or lease", target)
	}
	return cmp, nil
}

func parseOp(s string) (*etcdserverpb.RequestOp, error) {
	f, err := fields(s)
	if err != nil {
		return nil, err
	}
	var end []byte
	if len(f) == 3 {
		end = []byte(f[2])
	}
	switch {
	case len(f) == 3 && f[0] == "put":
		return &etcdserverpb.RequestOp{Request: &etcdserverpb.RequestOp_RequestPut{RequestPut: &etcdserverpb.PutRequest{Key: []byte(f[1]), Value: []byte(f[2])}}}, nil
	case (len(f) == 2 || len(f) == 3) && f[0] == "get":
		return &etcdserverpb.RequestOp{Request: &etcdserverpb.RequestOp_RequestRange{RequestRange: &etcdserverpb.RangeRequest{Key: []byte(f[1]), RangeEnd: end}}}, nil
	case (len(f) == 2 || len(f) == 3) && (f[0] == "del" || f[0] == "delete"):
		return &etcdserverpb.RequestOp{Request: &etcdserverpb.RequestOp_RequestDeleteRange{RequestDeleteRange: &etcdserverpb.DeleteRangeRequest{Key: []byte(f[1]), RangeEnd: end}}}, nil
	}
	return nil, fmt.Errorf("want put KEY VALUE, get KEY [END] or del KEY [END]")
}
