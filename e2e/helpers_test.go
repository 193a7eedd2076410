//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// testCtx returns a context that ends after d or when the test ends.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// must fails the test on a framework error (Kill, Stop, Restart, ...).
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkLogs checks the log contract on every node of c started with a
// config file: stderr is JSON lines (slog), every node logged "Ready to
// serve", and some node logged "Leader elected, term=N".
func checkLogs(t *testing.T, c *framework.Cluster) {
	t.Helper()
	elected := false
	for _, n := range c.Nodes() {
		b, err := os.ReadFile(n.LogPath())
		if err != nil {
			t.Fatal(err)
		}
		var bad []string
		ready := false
		for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			if strings.HasPrefix(line, "=== framework:") {
				continue // the framework's own marker
			}
			var rec struct {
				Msg string `json:"msg"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				bad = append(bad, line)
				continue
			}
			ready = ready || rec.Msg == "Ready to serve"
			elected = elected || strings.HasPrefix(rec.Msg, "Leader elected, term=")
		}
		if len(bad) > 0 {
			t.Errorf("%s logged %d lines that are not JSON, e.g.:\n%s", n, len(bad), strings.Join(bad[:min(len(bad), 5)], "\n"))
		}
		if !ready {
			t.Errorf("%s never logged \"Ready to serve\"", n)
		}
	}
	if !elected {
		t.Error("no node logged \"Leader elected, term=N\"")
	}
}
