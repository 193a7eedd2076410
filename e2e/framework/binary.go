//go:build e2e

package framework

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var centraBinFlag = flag.String("centra-bin", "", "centra binary to test (make test-e2e passes bin/centra); empty builds one with go build")

// keepFlag keeps every cluster's directory (configs, data, logs) after its
// test, passing or not, for reading the nodes' logs of a run that passed.
var keepFlag = flag.Bool("keep", false, "keep each cluster's directory (data and node logs) after the test; its path is logged")

// Paths set by Main.
var (
	centraBin string // absolute path of the centra binary under test
	workDir   string // temporary directory for built binaries
	rootDir   string // the centra module's root directory
)

// Main prepares the suite and runs it; TestMain calls os.Exit(Main(m)).
// It resolves -centra-bin or builds centra with go build into a temporary
// directory that it removes after the run.
func Main(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "centra-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	workDir = dir
	if err := resolveCentra(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		// Clients must be closed and processes reaped: no goroutine of
		// the suite may outlive it (PD's goleak.VerifyTestMain).
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: goroutine leak:", err)
			return 1
		}
	}
	return code
}

// CentraBin returns the path of the centra binary under test.
func CentraBin() string { return centraBin }

func resolveCentra() error {
	if *centraBinFlag != "" {
		abs, err := filepath.Abs(*centraBinFlag)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("-centra-bin: %w (run make build first)", err)
		}
		centraBin = abs
		return nil
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	out := filepath.Join(workDir, "centra")
	start := time.Now()
	if err := goBuild(root, out, "github.com/centra-cloud/centra"); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %v (pass -centra-bin to reuse a build)\n", out, time.Since(start).Round(time.Millisecond))
	centraBin = out
	return nil
}

// moduleRoot returns the directory of the centra module (the go.mod that
// governs the test's working directory, e2e/).
func moduleRoot() (string, error) {
	if rootDir != "" {
		return rootDir, nil
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: the e2e tests must run inside the centra module")
	}
	rootDir = filepath.Dir(gomod)
	return rootDir, nil
}

// goBuild runs `go build -o out pkg` in dir.
func goBuild(dir, out, pkg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s (in %s): %w\n%s", pkg, dir, err, stderr.String())
	}
	return nil
}

var (
	etcdctlOnce sync.Once
	etcdctlPath string
	etcdctlErr  error
)

// EtcdctlBin returns etcdctl built from e2e/tools (the version pinned by
// that module's go.mod), building it on the first call of the run.
func EtcdctlBin(t testing.TB) string {
	t.Helper()
	etcdctlOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			etcdctlErr = err
			return
		}
		out := filepath.Join(workDir, "etcdctl")
		if err := goBuild(filepath.Join(root, "e2e", "tools"), out, "go.etcd.io/etcd/etcdctl/v3"); err != nil {
			etcdctlErr = err
			return
		}
		etcdctlPath = out
	})
	if etcdctlErr != nil {
		t.Fatalf("build etcdctl: %v", etcdctlErr)
	}
	return etcdctlPath
}

// cleanEnv is the environment for child processes: the test's, without
// CENTRA_* variables that would change a node's config or the CLI's
// endpoints behind the test's back, and without ETCDCTL_* ones or a
// JOURNAL_STREAM inherited from a test run under systemd (WithJournald sets
// its own).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CENTRA_") || strings.HasPrefix(kv, "ETCDCTL_") || strings.HasPrefix(kv, "JOURNAL_STREAM=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// CmdResult is the outcome of a client command.
type CmdResult struct {
	Stdout, Stderr string
	// Err is nil on exit status 0, else an *exec.ExitError or a start
	// or timeout error.
	Err error
}

// ExitCode returns the process's exit status, or -1 when it did not exit
// normally.
func (r CmdResult) ExitCode() int {
	if r.Err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(r.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func (r CmdResult) String() string {
	return fmt.Sprintf("err=%v\nstdout:\n%s\nstderr:\n%s", r.Err, r.Stdout, r.Stderr)
}

// cliTimeout bounds each client command.
const cliTimeout = 30 * time.Second

// run runs bin with args, stdin and the clean environment in dir.
func run(dir, stdin, bin string, args ...string) CmdResult {
	return runEnv(dir, stdin, nil, bin, args...)
}

// runEnv is run with env added to the clean environment.
func runEnv(dir, stdin string, env []string, bin string, args ...string) CmdResult {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: timed out after %v: %w", filepath.Base(bin), strings.Join(args, " "), cliTimeout, err)
	}
	return CmdResult{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
}

// RunCLI runs the centra binary as a client (`centra kv put ...`) and
// returns its output. Nothing is added to args: pass --endpoint and the
// TLS flags (Cluster.TLSFlags) yourself.
func RunCLI(args ...string) CmdResult {
	return run("", "", centraBin, args...)
}

// RunCLIInput is RunCLI with stdin (for `centra kv txn`).
func RunCLIInput(stdin string, args ...string) CmdResult {
	return run("", stdin, centraBin, args...)
}

// RunEtcdctl runs etcdctl with args.
func RunEtcdctl(t testing.TB, args ...string) CmdResult {
	t.Helper()
	return run("", "", EtcdctlBin(t), args...)
}

// debianPackages names the Debian packages the e2e tests that need etcd's
// own 3.4 tools use (.ci/run installs them).
const debianPackages = "etcd-client (etcdctl) and etcd-server (etcd)"

// SystemTool returns the path of etcd's own program name ("etcdctl" or
// "etcd") as Debian installs it (version 3.4), or skips the test with what
// to install. These prove the migration paths against a real etcd.
func SystemTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found on PATH: install Debian's %s (apt-get install -y etcd-client etcd-server)", name, debianPackages)
	}
	return p
}

// RunSystemEtcdctl runs Debian's etcdctl 3.4 (see SystemTool) with args.
func RunSystemEtcdctl(t testing.TB, args ...string) CmdResult {
	t.Helper()
	return RunSystemEtcdctlInput(t, "", args...)
}

// RunSystemEtcdctlInput is RunSystemEtcdctl with stdin (`etcdctl txn`).
func RunSystemEtcdctlInput(t testing.TB, stdin string, args ...string) CmdResult {
	t.Helper()
	return run("", stdin, SystemTool(t, "etcdctl"), args...)
}
