// Package etcdcompat lets a test binary link etcd's Go API packages
// (go.etcd.io/etcd/api/v3, pulled in by go.etcd.io/etcd/client/v3) next to
// centra's generated gen/etcdserverpb and gen/mvccpb, and holds the tests
// proving the two are wire compatible.
//
// Both declare the same protobuf names (etcdserverpb.RangeRequest,
// mvccpb.KeyValue, ...), and both register them in
// google.golang.org/protobuf's global registry: etcd's gogo-generated code
// registers through github.com/golang/protobuf. The second registration
// panics at init ("proto: message mvccpb.KeyValue is already registered").
// A test that needs both imports this package for its side effect:
//
//	import _ "github.com/centra-cloud/centra/internal/etcdcompat"
//
// Its init sets GOLANG_PROTOBUF_REGISTRATION_CONFLICT=ignore unless the
// variable is already set (set it to "warn" to list the conflicts). It runs
// before any registration: packages are initialized in import path order
// among those whose imports are initialized, this package imports only os,
// and every registering package depends on
// google.golang.org/protobuf/reflect/protoregistry, which imports os too and
// sorts after github.com/centra-cloud/centra.
//
// In such a binary, lookups by name in protoregistry.GlobalTypes and
// GlobalFiles (Any, protojson, gRPC reflection) may find either definition;
// the tests here prove they are the same on the wire.
//
// Never import this package outside tests: centra's own binary must not
// link etcd's Go API packages at all.
package etcdcompat

import "os"

// conflictPolicyEnv is read by google.golang.org/protobuf's registry on
// every conflicting registration.
const conflictPolicyEnv = "GOLANG_PROTOBUF_REGISTRATION_CONFLICT"

func init() {
	if _, ok := os.LookupEnv(conflictPolicyEnv); !ok {
		// os.Setenv fails only for invalid names; this one is valid.
		_ = os.Setenv(conflictPolicyEnv, "ignore")
	}
}
