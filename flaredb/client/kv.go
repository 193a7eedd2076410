package client

import (
	"context"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/flaredb/internal/keys"
	flaredbv1 "github.com/centra-cloud/centra/gen/centra/flaredb/v1"
	"github.com/centra-cloud/centra/gen/centra/flaredb/v1/flaredbv1connect"
)

// keyOp prepares a single-key operation: the namespace (validated), the
// encoded key and the retrier.
func (c *Client) keyOp(ctx context.Context, op, ns string, key []byte) (string, []byte, *retrier, error) {
	tmpl := OpError{Op: op, Namespace: ns, Key: key}
	ns, err := keys.Namespace(ns)
	if err != nil {
		tmpl.Err = err
		return "", nil, nil, &tmpl
	}
	tmpl.Namespace = ns
	return ns, keys.Encode(ns, key), c.newRetrier(ctx, tmpl), nil
}

// Get reads key in namespace ns ("" = default). found is false when the
// key does not exist.
func (c *Client) Get(ctx context.Context, ns string, key []byte) (value []byte, found bool, err error) {
	ns, enc, r, err := c.keyOp(ctx, "get", ns, key)
	if err != nil {
		return nil, false, err
	}
	var resp *flaredbv1.GetResponse
	err = c.doKey(ctx, r, ns, enc, true, true, func(ctx context.Context, kv flaredbv1connect.KVServiceClient, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error) {
		res, err := kv.Get(ctx, connect.NewRequest(&flaredbv1.GetRequest{Context: rctx, Key: key}))
		if err != nil {
			return nil, err
		}
		resp = res.Msg
		return resp.GetRegionError(), nil
	})
	if err != nil {
		return nil, false, err
	}
	if resp.GetNotFound() {
		return nil, false, nil
	}
	return resp.GetValue(), true, nil
}

// Put writes key in namespace ns.
func (c *Client) Put(ctx context.Context, ns string, key, value []byte) error {
	ns, enc, r, err := c.keyOp(ctx, "put", ns, key)
	if err != nil {
		return err
	}
	return c.doKey(ctx, r, ns, enc, false, true, func(ctx context.Context, kv flaredbv1connect.KVServiceClient, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error) {
		return regionErr(kv.Put(ctx, connect.NewRequest(&flaredbv1.PutRequest{Context: rctx, Key: key, Value: value})))
	})
}

// Delete removes key from namespace ns; deleting a missing key succeeds.
func (c *Client) Delete(ctx context.Context, ns string, key []byte) error {
	ns, enc, r, err := c.keyOp(ctx, "delete", ns, key)
	if err != nil {
		return err
	}
	return c.doKey(ctx, r, ns, enc, false, true, func(ctx context.Context, kv flaredbv1connect.KVServiceClient, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error) {
		return regionErr(kv.Delete(ctx, connect.NewRequest(&flaredbv1.DeleteRequest{Context: rctx, Key: key})))
	})
}

// CompareAndSwap writes value to key only if the key currently holds prev
// (or, with prevNotExist, does not exist). It returns whether it wrote,
// and the value before the call (prevExisted false: the key was missing).
// When the outcome cannot be known, the error wraps ErrIndeterminate.
func (c *Client) CompareAndSwap(ctx context.Context, ns string, key, prev []byte, prevNotExist bool, value []byte) (succeeded bool, previous []byte, prevExisted bool, err error) {
	return c.cas(ctx, "compare-and-swap", ns, &flaredbv1.CompareAndSwapRequest{Key: key, PreviousValue: prev, PreviousNotExist: prevNotExist, Value: value})
}

// CompareAndDelete deletes key only if it currently holds prev; the
// results are CompareAndSwap's.
func (c *Client) CompareAndDelete(ctx context.Context, ns string, key, prev []byte) (succeeded bool, previous []byte, prevExisted bool, err error) {
	return c.cas(ctx, "compare-and-delete", ns, &flaredbv1.CompareAndSwapRequest{Key: key, PreviousValue: prev, Delete: true})
}

func (c *Client) cas(ctx context.Context, op, ns string, req *flaredbv1.CompareAndSwapRequest) (bool, []byte, bool, error) {
	ns, enc, r, err := c.keyOp(ctx, op, ns, req.GetKey())
	if err != nil {
		return false, nil, false, err
	}
	var resp *flaredbv1.CompareAndSwapResponse
	err = c.doKey(ctx, r, ns, enc, false, false, func(ctx context.Context, kv flaredbv1connect.KVServiceClient, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error) {
		req.Context = rctx
		res, err := kv.CompareAndSwap(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		resp = res.Msg
		return resp.GetRegionError(), nil
	})
	if err != nil {
		return false, nil, false, err
	}
	return resp.GetSucceeded(), resp.GetPreviousValue(), !resp.GetPreviousNotExist(), nil
}

// MaxBatchGetKeys is the most keys BatchGet sends a store in one request
// (the stores' limit); more keys of one region take several requests.
const MaxBatchGetKeys = keys.MaxBatchKeys

// BatchGet reads keys of namespace ns and returns the pairs found, in the
// order of keys (missing keys are left out). Keys of different regions
// are read concurrently and not at one moment.
func (c *Client) BatchGet(ctx context.Context, ns string, keyList [][]byte) ([]KvPair, error) {
	if len(keyList) == 0 {
		return nil, nil
	}
	ns, enc, r, err := c.batchOp(ctx, "batch-get", ns, keyList)
	if err != nil {
		return nil, err
	}
	values := make([][]byte, len(keyList))
	found := make([]bool, len(keyList))
	err = c.doGroups(ctx, r, ns, enc, true, MaxBatchGetKeys, func(idx []int) regionCall {
		return func(ctx context.Context, kv flaredbv1connect.KVServiceClient, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error) {
			req := &flaredbv1.BatchGetRequest{Context: rctx, Keys: make([][]byte, len(idx))}
			for k, i := range idx {
				req.Keys[k] = keyList[i]
			}
			res, err := kv.BatchGet(ctx, connect.NewRequest(req))
			if err != nil {
				return nil, err
			}
			if rerr := res.Msg.GetRegionError(); rerr != nil {
				return rerr, nil
			}
			got := make(map[string][]byte, len(res.Msg.GetPairs()))
			for _, p := range res.Msg.GetPairs() {
				got[string(p.GetKey())] = p.GetValue()
			}
			for _, i := range idx { // each index belongs to one goroutine
				values[i], found[i] = got[string(keyList[i])]
			}
			return nil, nil
		}
	})
	if err != nil {
		return nil, err
	}
	var out []KvPair
	for i, k := range keyList {
		if found[i] {
			out = append(out, KvPair{Key: k, Value: values[i]})
		}
	}
	return out, nil
}

// BatchPut writes pairs to namespace ns. The pairs of each region are
// written atomically; a batch spanning regions is not atomic: if BatchPut
// fails, the parts of some regions may have been written. Retrying the
// same batch is safe. Because a region's part is one raft entry, stores
// refuse a part of more than 10,000 keys or 8 MiB of keys and values
// (InvalidArgument); split bigger batches.
func (c *Client) BatchPut(ctx context.Context, ns string, pairs []KvPair) error {
	if len(pairs) == 0 {
		return nil
	}
	keyList := make([][]byte, len(pairs))
	for i, p := range pairs {
		keyList[i] = p.Key
	}
	ns, enc, r, err := c.batchOp(ctx, "batch-put", ns, keyList)
	if err != nil {
		return err
	}
	return c.doGroups(ctx, r, ns, enc, false, 0, func(idx []int) regionCall {
		return func(ctx context.Context, kv flaredbv1connect.KVServiceClient, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error) {
			// idx is in key order; a key given twice keeps the last value.
			req := &flaredbv1.BatchPutRequest{Context: rctx, Pairs: make([]*flaredbv1.KvPair, len(idx))}
			for k, i := range idx {
				req.Pairs[k] = &flaredbv1.KvPair{Key: pairs[i].Key, Value: pairs[i].Value}
			}
			return regionErr(kv.BatchPut(ctx, connect.NewRequest(req)))
		}
	})
}

func (c *Client) batchOp(ctx context.Context, op, ns string, keyList [][]byte) (string, [][]byte, *retrier, error) {
	tmpl := OpError{Op: op, Namespace: ns, Key: keyList[0], Keys: len(keyList)}
	ns, err := keys.Namespace(ns)
	if err != nil {
		tmpl.Err = err
		return "", nil, nil, &tmpl
	}
	tmpl.Namespace = ns
	enc := make([][]byte, len(keyList))
	for i, k := range keyList {
		enc[i] = keys.Encode(ns, k)
	}
	return ns, enc, c.newRetrier(ctx, tmpl), nil
}

// regionErr returns the region error of a unary answer, or the RPC error.
func regionErr[T any, PT interface {
	*T
	GetRegionError() *flaredbv1.RegionError
}](res *connect.Response[T], err error) (*flaredbv1.RegionError, error) {
	if err != nil {
		return nil, err
	}
	return PT(res.Msg).GetRegionError(), nil
}

// SplitAt makes key of namespace ns a region boundary: the region holding
// it splits there (a no-op when key already starts a region). Operators use
// it to pre-split before a bulk load; regions also split by themselves once
// they outgrow [region] max_size / max_keys.
func (c *Client) SplitAt(ctx context.Context, ns string, key []byte) error {
	ns, enc, r, err := c.keyOp(ctx, "split", ns, key)
	if err != nil {
		return err
	}
	return c.doKey(ctx, r, ns, enc, false, true, func(ctx context.Context, kv flaredbv1connect.KVServiceClient, rctx *flaredbv1.Context) (*flaredbv1.RegionError, error) {
		return regionErr(kv.SplitRegion(ctx, connect.NewRequest(&flaredbv1.SplitRegionRequest{Context: rctx, SplitKeys: [][]byte{key}})))
	})
}
