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
// imports neither pd nor flaredb; shared/* imports none of chainfire, pd,
// flaredb; and the centra binary never links etcd's Go API packages, which
// register the same protobuf names as gen/ and would panic at start-up.
func TestDependencyRules(t *testing.T) {
	rules := []struct {
		pkgs      string
		forbidden []string
	}{
		{module + "/chainfire/...", []string{module + "/pd", module + "/flaredb"}},
		{module + "/shared/...", []string{module + "/chainfire", module + "/pd", module + "/flaredb", module + "/internal"}},
		{module + "/config/...", []string{module + "/chainfire", module + "/pd", module + "/flaredb", module + "/shared", module + "/internal"}},
		{module, []string{"go.etcd.io/etcd/api", "go.etcd.io/etcd/client"}},
	}
	for _, r := range rules {
		for _, d := range deps(t, r.pkgs) {
			for _, f := range r.forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s depends on %s (forbidden by ARCHITECTURE.md)", r.pkgs, d)
				}
			}
		}
	}
}
