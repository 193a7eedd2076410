//go:build e2e

package framework

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
)

// usedPorts holds every port handed out in this process, so that two nodes
// (or a node and its restarted self's neighbour) never get the same one
// even after the probe listener is closed (rqlite's random_addr).
var (
	portsMu   sync.Mutex
	usedPorts = map[int]bool{}
)

// allocPort returns a free loopback port that this process has not handed
// out before. The port is free when allocPort returns; another process may
// still take it before centra binds it, which the start logic retries.
func allocPort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("framework: allocate a port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if !usedPorts[port] {
			usedPorts[port] = true
			return port, nil
		}
	}
	return 0, errors.New("framework: allocate a port: every probe returned a port already in use by this test process")
}

// allocAddr returns "127.0.0.1:PORT" for a fresh port.
func allocAddr() (string, error) {
	p, err := allocPort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// UnusedAddr returns a loopback address on which nothing listens (a port
// reserved for this process and not bound), for tests of unreachable
// endpoints.
func UnusedAddr() (string, error) {
	return allocAddr()
}

// PortsFree reports whether each address can be bound now. It returns the
// first address that cannot, with the reason. Tests that need fixed ports
// (the zero-config defaults 2379 and 2380) skip when this fails.
func PortsFree(addrs ...string) (busy string, err error) {
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return a, err
		}
		_ = ln.Close()
	}
	return "", nil
}

// FreeAddr returns a free loopback HOST:PORT that no node of this process
// uses, for programs a test runs itself (a real etcd).
func FreeAddr() (string, error) {
	p, err := allocPort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}
