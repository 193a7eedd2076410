package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/centra-cloud/centra"

// deps returns every package pattern imports, directly or not.
func deps(t *testing.T, pattern string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pattern).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pattern, err)
	}
	return strings.Fields(string(out))
}

// TestDependencyRules enforces the layering of ARCHITECTURE.md: chainfire
// imports neither pd nor flaredb; pd reaches chainfire through
// chainfire/client only; flaredb imports neither chainfire nor pd's
// internals; shared/* imports none of chainfire, pd, flaredb; and the centra
// binary never links etcd's Go API packages, which register the same
// protobuf names as gen/ and would panic at start-up.
func TestDependencyRules(t *testing.T) {
	rules := []struct {
		pkgs      string
		forbidden []string
		exact     bool // forbid the packages themselves, not their subpackages
	}{
		{module + "/flaredb/...", []string{module + "/pd"}, true}, // pd/client is allowed
		{module + "/chainfire/...", []string{module + "/pd", module + "/flaredb"}, false},
		// pd stores its state through chainfire's client interface only.
		{module + "/pd/...", []string{module + "/chainfire/internal", module + "/flaredb", module + "/internal", module + "/shared/raftnode"}, false},
		// flaredb talks to pd through its client, never pd internals or chainfire.
		{module + "/flaredb/...", []string{module + "/chainfire", module + "/internal"}, false},
		{module + "/shared/...", []string{module + "/chainfire", module + "/pd", module + "/flaredb", module + "/internal"}, false},
		{module + "/config/...", []string{module + "/chainfire", module + "/pd", module + "/flaredb", module + "/shared", module + "/internal"}, false},
		{module, []string{"go.etcd.io/etcd/api", "go.etcd.io/etcd/client"}, false},
	}
	for _, r := range rules {
		for _, d := range deps(t, r.pkgs) {
			for _, f := range r.forbidden {
				if d == f || (!r.exact && strings.HasPrefix(d, f+"/")) {
					t.Errorf("%s depends on %s (forbidden by ARCHITECTURE.md)", r.pkgs, d)
				}
			}
		}
	}
}
