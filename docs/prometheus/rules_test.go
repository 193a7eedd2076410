// Package prometheus_test checks the shipped Prometheus rules with promtool.
package prometheus_test

import (
	"os/exec"
	"testing"
)

// TestRules runs `promtool check rules` on centra-rules.yml and `promtool
// test rules` on centra-rules_test.yml: the runbook's alerts fire when and
// as they should, and the recording rules answer its lag query.
func TestRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found on PATH: install Debian's prometheus package (apt-get install -y prometheus; .ci/run does)")
	}
	for _, args := range [][]string{
		{"check", "rules", "centra-rules.yml"},
		{"test", "rules", "centra-rules_test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
