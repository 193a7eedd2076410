//go:build e2e && faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// opTimeout bounds each request; one that times out has an unknown outcome.
const opTimeout = 2 * time.Second

// doer sends one request to the store under test and returns its answer.
type doer func(context.Context, input) output

// traffic runs one goroutine per client until ctx ends: each picks one of
// keys at random and gets it (40%; with scans, a quarter of these are
// scans instead), puts a unique value (20%), deletes it (10%) or swaps the
// value it last read for a unique one (30%), recording into h. keys must
// be ascending.
func traffic(ctx context.Context, clients []doer, keys []string, scans bool, seed uint64, h *history) {
	var wg sync.WaitGroup
	for id, do := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(id)))
			seen := map[string]string{} // key -> value this client last read
			for i := 0; ctx.Err() == nil; i++ {
				key := keys[r.IntN(len(keys))]
				val := fmt.Sprintf("c%d-%d", id, i)
				var in input
				switch p := r.IntN(10); {
				case p < 4 && scans && r.IntN(4) == 0:
					in = scanInput(r, keys)
				case p < 4:
					in = input{Kind: opGet, Key: key}
				case p < 6:
					in = input{Kind: opPut, Key: key, Value: val}
				case p < 7:
					in = input{Kind: opDelete, Key: key}
				default:
					in = input{Kind: opCAS, Key: key, Value: val, Expect: seen[key]}
				}
				call := h.now()
				out := do(ctx, in)
				if ctx.Err() != nil && out.Unknown && in.read() {
					return
				}
				h.add(id, in, call, out)
				if in.Kind == opGet && !out.Unknown {
					seen[key] = out.Value
				}
			}
		})
	}
	wg.Wait()
}

// scanInput is a scan of keys (ascending) from a random one up to, but
// not including, a later one or the namespace's end, with a limit of 0
// (none) to 3 pairs, ascending or descending.
func scanInput(r *rand.Rand, keys []string) input {
	i := r.IntN(len(keys))
	j := i + 1 + r.IntN(len(keys)-i)
	in := input{Kind: opScan, Start: keys[i], Keys: keys[i:j], Limit: r.IntN(4), Reverse: r.IntN(2) == 0}
	if j < len(keys) {
		in.End = keys[j]
	}
	return in
}

// etcdDoer sends requests through cli: get, put, delete, and CAS by a txn on the
// value (or on version 0 for absent). Every error but one leaves the
// outcome unknown: a request that failed may still have been applied.
// The exception is NOSPACE ("database space exceeded"): Chainfire refuses
// the write before proposing it or at apply, on every replica alike, so it
// took no effect (NotSent).
func etcdDoer(cli *clientv3.Client) doer {
	return func(ctx context.Context, in input) output { return doEtcd(ctx, cli, in) }
}

func doEtcd(ctx context.Context, cli *clientv3.Client, in input) output {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	switch in.Kind {
	case opGet:
		resp, err := cli.Get(ctx, in.Key)
		if err != nil {
			return output{Unknown: true}
		}
		if len(resp.Kvs) == 0 {
			return output{}
		}
		return output{Value: string(resp.Kvs[0].Value)}
	case opPut:
		_, err := cli.Put(ctx, in.Key, in.Value)
		return writeOutput(err, false)
	case opDelete:
		_, err := cli.Delete(ctx, in.Key)
		return writeOutput(err, false)
	default:
		cmp := clientv3.Compare(clientv3.Value(in.Key), "=", in.Expect)
		if in.Expect == "" {
			cmp = clientv3.Compare(clientv3.Version(in.Key), "=", 0)
		}
		resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(in.Key, in.Value)).Commit()
		return writeOutput(err, err == nil && resp.Succeeded)
	}
}

// writeOutput is a put's or CAS's output for err.
func writeOutput(err error, succeeded bool) output {
	switch {
	case errors.Is(rpctypes.Error(err), rpctypes.ErrNoSpace):
		return output{NotSent: true}
	case err != nil:
		return output{Unknown: true}
	}
	return output{Succeeded: succeeded}
}
