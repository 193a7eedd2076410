//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestStoreOverTLS runs a store with the runbook's [tls] section against an
// mTLS control plane: it registers and heartbeats over TLS with its
// certificate, and PD lists it Up on every node.
func TestStoreOverTLS(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3), framework.WithTLS(), framework.WithStores(1))
	st := c.Store(0)
	must(t, st.WaitLog(testCtx(t, 20*time.Second), fmt.Sprintf("Registered with PD, store_id=%d", st.StoreID())))
	for _, n := range c.Nodes() {
		framework.Eventually(t, func() error {
			list, err := n.PDStores(testCtx(t, 5*time.Second), "")
			if err != nil {
				return err
			}
			if s, ok := list.Find(st.StoreID()); !ok || s.Store.StateName != "Up" {
				return fmt.Errorf("%s: store %d not Up: %s", n, st.StoreID(), list.Summary())
			}
			return nil
		}, 20*time.Second)
	}
	r := c.RunCLI(append(append([]string{"flaredb", "cluster-status"}, c.TLSFlags()...), "--endpoint", c.Node(0).Endpoint())...)
	if want := fmt.Sprintf("store_id=%d, state=Up", st.StoreID()); r.Err != nil || !strings.Contains(r.Stdout, want) {
		t.Fatalf("cluster-status over TLS: want %q, got %s", want, r)
	}
}
