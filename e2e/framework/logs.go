//go:build e2e

package framework

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Crashes describes every exit of the node's processes that the framework
// did not cause (crashes, or signals from elsewhere).
func (n *Node) Crashes() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.crashes...)
}

// TakeCrashes returns Crashes and forgets them, for a test that provoked
// an exit (a full disk) and checks it itself: the cluster's cleanup then
// does not report them.
func (n *Node) TakeCrashes() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.crashes
	n.crashes = nil
	return out
}

// CurrentLog returns what the current (or last) process of the node
// logged, since its start.
func (n *Node) CurrentLog() string { return n.currentLog() }

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
