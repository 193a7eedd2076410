//go:build tools

// Package tools pins the third-party command line tools the e2e suite
// builds: etcdctl, to prove centra answers etcd's own client. The e2e
// TestMain runs `go build go.etcd.io/etcd/etcdctl/v3` in this directory, so
// the version comes from this module's go.mod and go.sum, not from centra's.
package tools

import _ "go.etcd.io/etcd/etcdctl/v3"
