//go:build e2e

package framework

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
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

	// joining renders the config with bootstrap = false and an empty
	// initial_members (a node that joins through member-add).
	joining bool
	// raftRole is raft.role in the config ("" keeps the default, voter).
	raftRole string
	// serverBin, when set, is run as `serverBin --config FILE` instead of
	// `centra serve --config FILE` (a chainfire-server multi-call link).
	serverBin string
	// extraArgs are appended to the command line of the start in progress
	// (StartWithArgs).
	extraArgs []string
	// store marks a store (PrepareStore): ID is its store_id; it runs as
	// `centra serve --role=store` with its raft address as a flag.
	store bool
	// netns is the network namespace the process runs in (WithNetns);
	// "" is the test's own.
	netns string
	// expectExit is set while StartExpectingExit waits for the process to
	// exit on its own: that exit is not a crash.
	expectExit bool

	mu      sync.Mutex
	cmd     *exec.Cmd
	cancel  context.CancelFunc // sends SIGTERM through cmd.Cancel
	done    chan struct{}      // closed when the process has exited
	exitErr error              // cmd.Wait's result, valid after done
	paused  bool
	logOff  int64 // size of the log file when the process started
	starts  int
	// stopping is set when the framework stops or kills the process; an
	// exit without it is a crash, recorded in crashes.
	stopping bool
	crashes  []string
}

// Netns returns the network namespace the node runs in ("" for the test's
// own; see WithNetns).
func (n *Node) Netns() string { return n.netns }

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

func (n *Node) String() string {
	if n.store {
		return fmt.Sprintf("store %d (%s)", n.ID, n.apiAddr)
	}
	return fmt.Sprintf("node %d (%s)", n.ID, n.apiAddr)
}

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

// Paused reports whether the process is stopped with SIGSTOP.
func (n *Node) Paused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.runningLocked() && n.paused
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
	bin, args := centraBin, []string{"serve"}
	if n.store {
		args = append(args, "--role=store")
	}
	if n.serverBin != "" {
		bin, args = n.serverBin, nil
	}
	if n.configPath != "" {
		args = append(args, "--config", n.configPath)
	}
	if n.store {
		args = append(args, "--network-raft-addr", n.raftAddr)
		args = append(args, n.c.opts.storeArgs...)
	}
	args = append(args, n.extraArgs...)
	if n.netns != "" {
		// ip execs the program in place: the pid is centra's own, so
		// signals (kill, pause) reach it.
		bin, args = "ip", append([]string{"netns", "exec", n.netns, bin}, args...)
	}
	fmt.Fprintf(logf, "=== framework: start #%d: %s %s (cwd %s) at %s\n", n.starts, bin, strings.Join(args, " "), n.dir, time.Now().Format(time.RFC3339Nano))

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = n.dir
	cmd.Env = cleanEnv()
	if n.c.opts.journald {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			cmd.Env = append(cmd.Env, fmt.Sprintf("JOURNAL_STREAM=%d:%d", sys.Dev, sys.Ino))
		}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if n.c.opts.ownPgrp {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	cmd.WaitDelay = stopGrace
	if err := cmd.Start(); err != nil {
		cancel()
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", n, err)
	}
	done := make(chan struct{})
	n.cmd, n.cancel, n.done, n.exitErr, n.paused, n.stopping = cmd, cancel, done, nil, false, false
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
		if !n.stopping && !n.expectExit {
			n.crashes = append(n.crashes, fmt.Sprintf("%s exited on its own at %s (%v, pid %d)",
				n, time.Now().Format(time.RFC3339Nano), cmd.ProcessState, cmd.Process.Pid))
		}
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
		if err == nil && n.c.tls != nil {
			// Complete a handshake rather than hang up in the middle of
			// one, which the node would log as an error.
			tc := tls.Client(conn, n.c.tls.client.Clone())
			if err = tc.HandshakeContext(ctx); err != nil {
				_ = conn.Close()
			}
			conn = tc
		}
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
		n.mu.Lock()
		if len(n.crashes) > 0 {
			n.crashes = n.crashes[:len(n.crashes)-1] // this exit was expected
		}
		n.mu.Unlock()
		if err := n.waitPortsFree(deadline); err != nil {
			return err
		}
	}
}

// waitPortsFree polls until the node's API and raft ports can be bound.
func (n *Node) waitPortsFree(deadline time.Time) error {
	for {
		addrs := []string{n.apiAddr}
		if n.raftAddr != "" {
			addrs = append(addrs, n.raftAddr)
		}
		busy, err := PortsFree(addrs...)
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
func (n *Node) Kill() error {
	n.mu.Lock()
	n.stopping = true
	n.mu.Unlock()
	if err := n.signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	if err := n.wait(stopGrace); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	n.c.t.Logf("%s killed (SIGKILL)", n)
	return nil
}

// Stop sends SIGTERM and waits for the process to exit (SIGKILL after
// stopGrace). It returns an error if the exit was not clean (status 0):
// a node must shut down cleanly on SIGTERM.
func (n *Node) Stop() error {
	if err := n.stop(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}

func (n *Node) stop() error {
	n.mu.Lock()
	if !n.runningLocked() {
		n.mu.Unlock()
		return nil
	}
	n.stopping = true
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
func (n *Node) Restart() error {
	if n.Running() {
		if err := n.Stop(); err != nil {
			return err
		}
	}
	if err := n.start(); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	n.c.t.Logf("%s restarted", n)
	return nil
}

// Pause freezes the process (SIGSTOP).
func (n *Node) Pause() error {
	if err := n.signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pause: %w", err)
	}
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
	n.c.t.Logf("%s paused (SIGSTOP)", n)
	return nil
}

// Resume continues a paused process (SIGCONT).
func (n *Node) Resume() error {
	if err := n.signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
	n.c.t.Logf("%s resumed (SIGCONT)", n)
	return nil
}
