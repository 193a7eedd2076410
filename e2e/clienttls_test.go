//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestRunbookClientTLSFromEnv runs the runbooks' client lines as written
// (http://NODE:PORT endpoints) against a TLS cluster: with the TLS material
// in centra's or etcdctl's environment variables they work; without, the
// error says that the server speaks TLS and what to pass.
func TestRunbookClientTLSFromEnv(t *testing.T) {
	c := framework.NewCluster(t, framework.WithTLS())
	client := framework.MultiCallBin(t, "chainfire-client")
	ep := httpEndpoint(c.Node(0))
	for _, prefix := range []string{"CENTRA", "ETCDCTL"} {
		env := c.TLSEnv(prefix)
		if r := framework.RunBinEnv(client, env, "--endpoint", ep, "put", "tls/"+prefix, "v"); r.Err != nil {
			t.Fatalf("put with %s_* TLS variables: %s", prefix, r)
		}
		if r := framework.RunBinEnv(client, env, "--endpoint", ep, "get", "tls/"+prefix); r.Err != nil || r.Stdout != "v\n" {
			t.Fatalf("get with %s_* TLS variables: %s", prefix, r)
		}
		r := framework.RunBinEnv(client, env, "--endpoint", ep, "status")
		if st := statusLines(r.Stdout); r.Err != nil || st["leader"] == "" {
			t.Fatalf("status with %s_* TLS variables: %s", prefix, r)
		}
	}
	r := framework.RunBin(client, "--endpoint", ep, "status")
	wantError(t, "status without TLS material", r, "the server speaks TLS and this client does not")
	if !strings.Contains(r.Stderr, "CENTRA_CACERT") {
		t.Errorf("the error should name the variable to set: %s", r)
	}
}
