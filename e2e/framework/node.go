//go:build e2e

package framework

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Timeouts of process control. They bound waits; nothing sleeps for them.
const (
	// stopGrace is how long a node may take to exit after SIGTERM before
	// it gets SIGKILL (cmd.WaitDelay).
	stopGrace = 15 * time.Second
	// listenTimeout bounds how long a started process may take to open its
	// API port.
	listenTimeout = 30 * time.Second
	// pollTick is the period of every condition poll.
	pollTick = 50 * time.Millisecond
)

// errAddrInUse marks a start that failed because a port was taken.
var errAddrInUse = errors.New("framework: address already in use")

// Node is one centra process of a Cluster.
type Node struct {
	c *Cluster
	// Index is the node's position in the cluster, from 0.
	Index int
	// ID is node.id in its config (Index+1).
	ID uint64
	// Name is node.name.
	Name string

	apiAddr, raftAddr string
	dataDir           string // storage.data_dir
	dir               string // working directory of the process
	configPath        string // "" in dev mode: no --config at all
	logPath           string

	mu      sync.Mutex
	cmd     *exec.Cmd
	cancel  context.CancelFunc // sends SIGTERM through cmd.Cancel
	done    chan struct{}      // closed when the process has exited
	exitErr error              // cmd.Wait's result, valid after done
	paused  bool
	logOff  int64 // size of the log file when the process started
	starts  int
}

// Endpoint returns the API address HOST:PORT.
func (n *Node) Endpoint() string { return n.apiAddr }

// RaftAddr returns the raft address HOST:PORT.
func (n *Node) RaftAddr() string { return n.raftAddr }

// URL returns the API's base URL (http:// or https://).
func (n *Node) URL() string {
	if n.c.tls != nil {
		return "https://" + n.apiAddr
	}
	return "http://" + n.apiAddr
}

// DataDir returns the node's storage.data_dir.
func (n *Node) DataDir() string { return n.dataDir }

// Dir returns the process's working directory.
func (n *Node) Dir() string { return n.dir }

// LogPath returns the file holding the node's stdout and stderr, across
// restarts.
func (n *Node) LogPath() string { return n.logPath }

func (n *Node) String() string { return fmt.Sprintf("node %d (%s)", n.ID, n.apiAddr) }

// Running reports whether the process has been started and not exited.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.runningLocked()
}

func (n *Node) runningLocked() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// launch starts the process; it does not wait for anything.
func (n *Node) launch() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.runningLocked() {
		return fmt.Errorf("%s is already running", n)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	st, err := logf.Stat()
	if err != nil {
		_ = logf.Close()
		return err
	}
	n.starts++
	n.logOff = st.Size()
	args := []string{"serve"}
	if n.configPath != "" {
		args = append(args, "--config", n.configPath)
	}
	fmt.Fprintf(logf, "=== framework: start #%d: %s %s (cwd %s) at %s\n", n.starts, centraBin, strings.Join(args, " "), n.dir, time.Now().Format(time.RFC3339Nano))

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, centraBin, args...)
	cmd.Dir = n.dir
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	if err := cmd.Start(); err != nil {
		cancel()
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", n, err)
	}
	done := make(chan struct{})
	n.cmd, n.cancel, n.done, n.exitErr, n.paused = cmd, cancel, done, nil, false
	go func() {
		err := cmd.Wait()
		if cmd.ProcessState != nil && cmd.ProcessState.Success() {
			// Wait reports the canceled context even when the process
			// exited 0 on our SIGTERM; a clean exit is not an error.
			err = nil
		}
		_ = logf.Close()
		n.mu.Lock()
		n.exitErr = err
		n.mu.Unlock()
		close(done)
	}()
	return nil
}

// exited returns the exit error and true once the current process exited.
func (n *Node) exited() (error, bool) {
	n.mu.Lock()
	done, err := n.done, n.exitErr
	n.mu.Unlock()
	if done == nil {
		return errors.New("never started"), true
	}
	select {
	case <-done:
		n.mu.Lock()
		err = n.exitErr
		n.mu.Unlock()
		return err, true
	default:
		return err, false
	}
}

// exitReason explains an early exit: errAddrInUse when the log says a port
// was taken, else the exit status and the last log lines of this run.
func (n *Node) exitReason(exitErr error) error {
	text := n.currentLog()
	if strings.Contains(text, "address already in use") {
		return fmt.Errorf("%s exited (%v): %w", n, exitErr, errAddrInUse)
	}
	return fmt.Errorf("%s exited early (%v); its log ends:\n%s", n, exitErr, lastLines(text, 20))
}

// currentLog returns the log written since the current process started.
func (n *Node) currentLog() string {
	n.mu.Lock()
	off := n.logOff
	n.mu.Unlock()
	b, err := os.ReadFile(n.logPath)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// waitListening waits until the API port accepts TCP connections, or the
// process exits (then it returns exitReason).
func (n *Node) waitListening(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, listenTimeout)
	defer cancel()
	d := net.Dialer{Timeout: time.Second}
	for {
		if err, ok := n.exited(); ok {
			return n.exitReason(err)
		}
		conn, err := d.DialContext(ctx, "tcp", n.apiAddr)
		if err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: API port not open after %v: %w", n, listenTimeout, ctx.Err())
		case <-time.After(pollTick):
		}
	}
}

// start launches the process and waits for its API port, retrying while
// the failure is a port someone else took (it may be freed: a restarted
// node needs its old ports back).
func (n *Node) start() error {
	deadline := time.Now().Add(listenTimeout)
	for {
		if err := n.launch(); err != nil {
			return err
		}
		err := n.waitListening(context.Background())
		if err == nil || !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			return err
		}
		n.c.t.Logf("%s: port in use, retrying the start once its ports are free: %v", n, err)
		if err := n.waitPortsFree(deadline); err != nil {
			return err
		}
	}
}

// waitPortsFree polls until the node's API and raft ports can be bound.
func (n *Node) waitPortsFree(deadline time.Time) error {
	for {
		busy, err := PortsFree(n.apiAddr, n.raftAddr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: port %s stays busy: %w", n, busy, err)
		}
		time.Sleep(pollTick) // a poll tick of a condition, not a fixed wait
	}
}

// signal sends sig to the running process.
func (n *Node) signal(sig os.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.runningLocked() {
		return fmt.Errorf("%s is not running", n)
	}
	return n.cmd.Process.Signal(sig)
}

// wait waits for the current process to exit, at most timeout.
func (n *Node) wait(timeout time.Duration) error {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %v", n, timeout)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (n *Node) Kill() {
	n.c.t.Helper()
	if err := n.signal(syscall.SIGKILL); err != nil {
		n.c.t.Fatalf("kill: %v", err)
	}
	if err := n.wait(stopGrace); err != nil {
		n.c.t.Fatalf("kill: %v", err)
	}
	n.c.t.Logf("%s killed (SIGKILL)", n)
}

// Stop sends SIGTERM and waits for a clean exit (SIGKILL after stopGrace).
// A non-zero exit status fails the test (but does not stop it).
func (n *Node) Stop() {
	n.c.t.Helper()
	if err := n.stop(); err != nil {
		n.c.t.Errorf("stop: %v", err)
	}
}

func (n *Node) stop() error {
	n.mu.Lock()
	if !n.runningLocked() {
		n.mu.Unlock()
		return nil
	}
	if n.paused {
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
		n.paused = false
	}
	cancel, done := n.cancel, n.done
	n.mu.Unlock()
	start := time.Now()
	cancel() // cmd.Cancel: SIGTERM; cmd.WaitDelay: SIGKILL later
	select {
	case <-done:
	case <-time.After(stopGrace + 5*time.Second):
		return fmt.Errorf("%s did not exit after SIGTERM and SIGKILL", n)
	}
	err, _ := n.exited()
	if err != nil {
		return fmt.Errorf("%s exited with %v after SIGTERM (took %v)", n, err, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// Restart starts the node again on the same data directory and config,
// stopping it first (SIGTERM) if it runs, and waits until its API port is
// open. Call WaitReady to wait until it serves reads.
func (n *Node) Restart() {
	n.c.t.Helper()
	if n.Running() {
		n.Stop()
	}
	if err := n.start(); err != nil {
		n.c.t.Fatalf("restart: %v", err)
	}
	n.c.t.Logf("%s restarted", n)
}

// Pause freezes the process (SIGSTOP).
func (n *Node) Pause() {
	n.c.t.Helper()
	if err := n.signal(syscall.SIGSTOP); err != nil {
		n.c.t.Fatalf("pause: %v", err)
	}
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
}

// Resume continues a paused process (SIGCONT).
func (n *Node) Resume() {
	n.c.t.Helper()
	if err := n.signal(syscall.SIGCONT); err != nil {
		n.c.t.Fatalf("resume: %v", err)
	}
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
}

// httpClient returns a client for the node's HTTP endpoints (TLS-aware).
func (n *Node) httpClient() *http.Client {
	tr := &http.Transport{DisableKeepAlives: true}
	if n.c.tls != nil {
		tr.TLSClientConfig = n.c.tls.client.Clone()
	}
	return &http.Client{Transport: tr, Timeout: 3 * time.Second}
}

// Get fetches path (e.g. "/metrics") from the API listener and returns the
// status code and body.
func (n *Node) Get(ctx context.Context, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+path, nil)
	if err != nil {
		return 0, "", err
	}
	hc := n.httpClient()
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// WaitReady polls /readyz about every 50 ms until it answers 200 (the node
// serves linearizable reads) or ctx ends. It fails fast if the process
// exits.
func (n *Node) WaitReady(ctx context.Context) error {
	var last string
	for {
		if err, ok := n.exited(); ok {
			return n.exitReason(err)
		}
		code, body, err := n.Get(ctx, "/readyz")
		if err == nil && code == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last /readyz: %s)", n, ctx.Err(), last)
		case <-time.After(pollTick):
		}
	}
}

// clientConfig returns the clientv3 config for endpoints, TLS-aware.
func (c *Cluster) clientConfig(endpoints []string) clientv3.Config {
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	}
	if c.tls != nil {
		cfg.TLS = c.tls.client.Clone()
	}
	return cfg
}

// NewClient returns a clientv3 client for the given endpoints that the
// caller must close.
func (c *Cluster) NewClient(endpoints ...string) (*clientv3.Client, error) {
	return clientv3.New(c.clientConfig(endpoints))
}

// Client returns a clientv3 client talking to this node only, closed when
// the test ends.
func (n *Node) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := n.c.NewClient(n.apiAddr)
	if err != nil {
		t.Fatalf("client for %s: %v", n, err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// Status asks the node for its Maintenance.Status through a fresh
// connection (so that a restarted node is not hidden by a reconnect
// backoff).
func (n *Node) Status(ctx context.Context) (*clientv3.StatusResponse, error) {
	cli, err := n.c.NewClient(n.apiAddr)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cli.Status(ctx, n.apiAddr)
}

// tail returns the last n lines of the node's log file.
func (n *Node) tail(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return lastLines(string(b), lines)
}

// lastLines returns the last n lines of text.
func lastLines(text string, n int) string {
	var all []string
	sc := bufio.NewScanner(bytes.NewReader([]byte(text)))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		all = append(all, sc.Text())
	}
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return strings.Join(all, "\n")
}

// tlsFiles are the certificate files of a TLS cluster.
type tlsFiles struct {
	dir                   string
	caFile                string
	clientCert, clientKey string
	client                *tls.Config // CA + client certificate
}
