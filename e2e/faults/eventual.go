//go:build e2e && faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/e2e/framework"
	flaredb "github.com/centra-cloud/centra/flaredb/client"
	flaredbv1 "github.com/centra-cloud/centra/gen/centra/flaredb/v1"
	"github.com/centra-cloud/centra/gen/centra/flaredb/v1/flaredbv1connect"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

// newFlareDB returns a FlareDB client of c's control-plane nodes, over
// mutual TLS in a TLS cluster.
func newFlareDB(c *framework.Cluster) (*flaredb.Client, error) {
	var urls []string
	for _, n := range c.Nodes() {
		urls = append(urls, n.URL())
	}
	return flaredb.New(strings.Join(urls, ","), flaredb.WithTLS(c.ClientTLS()))
}

// eventualNS is the FlareDB namespace under the convergence check,
// eventual in [namespace_modes]: any replica serves reads from its local
// data, so replicas may differ for a while, but not once writes and
// faults stop.
const eventualNS = "faults-ev"

// eventualKeys are the keys of the eventual namespace; one writer per key
// puts unique values one after another.
var eventualKeys = []string{"e/k0", "e/k1", "e/k2"}

// convergeTimeout bounds the wait for the replicas to converge after the
// last fault was undone and every process serves again: a replica behind
// catches up from its leader's log (heartbeats every tick) or a snapshot,
// so seconds are plenty; the margin is for a loaded machine.
const convergeTimeout = 30 * time.Second

// eventualWriter records, per key, the values written in call order and
// whether each was acknowledged.
type eventualWriter struct {
	mu     sync.Mutex
	writes map[string][]evWrite
	acked  int
}

type evWrite struct {
	value string
	acked bool
}

// run puts unique values to key through cli until ctx ends.
func (w *eventualWriter) run(ctx context.Context, cli *flaredb.Client, key string) {
	for i := 0; ctx.Err() == nil; i++ {
		v := fmt.Sprintf("%s-%d", key, i)
		octx, cancel := context.WithTimeout(ctx, flaredbOpTimeout)
		err := cli.Put(octx, eventualNS, []byte(key), []byte(v))
		cancel()
		var oe *flaredb.OpError
		if err != nil && errors.As(err, &oe) && oe.Attempts == 0 {
			continue // never sent: it cannot take effect
		}
		w.mu.Lock()
		w.writes[key] = append(w.writes[key], evWrite{value: v, acked: err == nil})
		if err == nil {
			w.acked++
		}
		w.mu.Unlock()
	}
}

// allowed returns the values key may hold once writes stopped: the last
// acknowledged write's or any later (unacknowledged, maybe applied)
// write's; with no acknowledged write also absent ("").
func (w *eventualWriter) allowed(key string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws := w.writes[key]
	from := 0
	out := []string{""}
	for i, x := range ws {
		if x.acked {
			from, out = i, nil
		}
	}
	for _, x := range ws[from:] {
		out = append(out, x.value)
	}
	return out
}

// replicaView is what one replica of a region holds of the eventual
// namespace.
type replicaView struct {
	store uint64
	pairs map[string]string
}

// readReplicas scans the eventual namespace on every replica of every
// region PD lists, sending each scan to that replica's store with the
// region's ID and epoch (no client routing: a replica that cannot serve
// fails the read instead of handing it to another). It returns the
// views by region ID.
func readReplicas(ctx context.Context, cp *framework.Node, stores []*framework.Node) (map[uint64][]replicaView, error) {
	rs, err := pdRegions(ctx, cp)
	if err != nil {
		return nil, err
	}
	// Without this, the keys of a split-born region PD has not heard of
	// yet read as absent on every replica (seed 4401, split-isolated).
	if err := coverGap(rs); err != nil {
		return nil, err
	}
	out := map[uint64][]replicaView{}
	for _, r := range rs {
		if r.Epoch == nil {
			return nil, fmt.Errorf("PD shows %v without an epoch", r)
		}
		epoch := &metav1.RegionEpoch{ConfVer: r.Epoch.ConfVer, Version: r.Epoch.Version}
		for _, p := range r.Peers {
			i := slices.IndexFunc(stores, func(s *framework.Node) bool { return s.StoreID() == p.StoreID })
			if i < 0 {
				return nil, fmt.Errorf("%v: no store %d in the cluster", r, p.StoreID)
			}
			pairs, err := scanReplica(ctx, stores[i], &flaredbv1.Context{RegionId: r.ID, RegionEpoch: epoch, Namespace: eventualNS})
			if err != nil {
				return nil, fmt.Errorf("%v, replica on store %d: %w", r, p.StoreID, err)
			}
			if pairs != nil {
				out[r.ID] = append(out[r.ID], replicaView{store: p.StoreID, pairs: pairs})
			}
		}
	}
	return out, nil
}

// scanReplica scans the eventual namespace's part of one region on store
// s. It returns nil pairs when the region holds no part of the namespace.
func scanReplica(ctx context.Context, s *framework.Node, rctx *flaredbv1.Context) (map[string]string, error) {
	kv := flaredbv1connect.NewKVServiceClient(s.ConnectClient(), s.URL())
	stream, err := kv.Scan(ctx, connect.NewRequest(&flaredbv1.ScanRequest{Context: rctx}))
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	pairs := map[string]string{}
	for stream.Receive() {
		m := stream.Msg()
		if re := m.GetRegionError(); re != nil {
			if re.GetKeyNotInRegion() != nil {
				return nil, nil
			}
			return nil, fmt.Errorf("region error: %s", re.GetMessage())
		}
		for _, p := range m.GetPairs() {
			pairs[string(p.GetKey())] = string(p.GetValue())
		}
	}
	return pairs, stream.Err()
}

// checkConvergence waits up to convergeTimeout until every replica of
// every region holds the same pairs of the eventual namespace, and then
// checks each key's value against w (an acknowledged write is never
// undone, and nothing else appears). It returns the problems found: the
// last divergence seen when the wait ran out, or the bad values.
func checkConvergence(ctx context.Context, cp *framework.Node, stores []*framework.Node, w *eventualWriter) (time.Duration, []string) {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(ctx, convergeTimeout)
	defer cancel()
	var views map[uint64][]replicaView
	var last []string // the divergence, or why the replicas could not be read
	err := framework.WaitForCtx(ctx, func() error {
		var err error
		if views, err = readReplicas(ctx, cp, stores); err != nil {
			last = []string{err.Error()}
			return err
		}
		if last = divergence(views); len(last) > 0 {
			return errors.New("replicas differ")
		}
		return nil
	})
	if err != nil {
		return time.Since(begin), append([]string{fmt.Sprintf("replicas did not converge within %v:", convergeTimeout)}, last...)
	}
	return time.Since(begin), badValues(views, w)
}

// divergence describes the regions whose replicas differ.
func divergence(views map[uint64][]replicaView) []string {
	var out []string
	for id, vs := range views {
		for _, v := range vs[1:] {
			if !maps.Equal(v.pairs, vs[0].pairs) {
				out = append(out, fmt.Sprintf("region %d: store %d holds %v, store %d holds %v", id, vs[0].store, vs[0].pairs, v.store, v.pairs))
			}
		}
	}
	slices.Sort(out)
	return out
}

// badValues checks the converged values against the writes.
func badValues(views map[uint64][]replicaView, w *eventualWriter) []string {
	final := map[string]string{}
	for _, vs := range views {
		maps.Copy(final, vs[0].pairs)
	}
	var out []string
	for _, k := range eventualKeys {
		if ok := w.allowed(k); !slices.Contains(ok, final[k]) {
			out = append(out, fmt.Sprintf("%s converged to %q; the last acknowledged write and later ones: %s", k, final[k], strings.Join(ok, ", ")))
		}
	}
	for k := range final {
		if !slices.Contains(eventualKeys, k) {
			out = append(out, fmt.Sprintf("key %q appeared, never written", k))
		}
	}
	return out
}
