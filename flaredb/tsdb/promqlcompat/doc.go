// Package promqlcompat runs Prometheus's own PromQL test scripts
// (promql/promqltest) over flaredb/tsdb's storage. It is a module of its
// own so that promqltest's test-only dependencies stay out of centra's
// go.mod and vendor tree; run it with `make test-promql`.
package promqlcompat
