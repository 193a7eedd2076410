// Package archtest holds the test that enforces ARCHITECTURE.md's dependency
// rules by reading `go list -deps`.
package archtest
