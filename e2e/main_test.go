//go:build e2e

// Package e2e holds the end-to-end tests: real centra processes started by
// e2e/framework, driven through etcd's clientv3, etcdctl and the centra
// CLI. Run them with `make test-e2e` (or go test -tags e2e ./e2e/...).
package e2e

import (
	"os"
	"testing"

	"github.com/centra-cloud/centra/e2e/framework"
)

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m))
}
