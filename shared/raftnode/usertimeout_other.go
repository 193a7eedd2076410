//go:build !linux

package raftnode

import (
	"net"
	"time"
)

// setUserTimeout is a no-op where TCP_USER_TIMEOUT does not exist: a
// partitioned connection then recovers at TCP's next retransmission.
func setUserTimeout(*net.TCPConn, time.Duration) error { return nil }
