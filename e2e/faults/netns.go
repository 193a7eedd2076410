//go:build e2e && faults

package faults

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// network puts each node in its own network namespace, joined to the
// test's namespace by a veth pair on a bridge: node i is 10.77.S.(10+i),
// the bridge (the clients' side) 10.77.S.1. Partitions are blackhole
// routes inside a node's namespace: a route to peer j drops every packet
// the node sends to j (one-way loss); a route each way cuts the pair.
// Clients keep reaching every node. iptables, nft and tc's drop actions
// are not needed (the box this was written on has none of them).
type network struct {
	prefix string // link names: prefix+"b" the bridge, prefix+"v<i>" veths
	subnet string // "10.77.S"
	nodes  int
}

// netnsSeq tells the networks of one test process apart.
var netnsSeq atomic.Uint32

// newNetwork creates the namespaces, veths and bridge for n nodes and
// removes them when the test ends (after the cluster's processes stopped:
// call it before framework.NewCluster). Names carry the test process's
// pid, so that leftovers of a killed run are removed by the next one.
func newNetwork(t *testing.T, n int) (*network, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("network namespaces need root (ip netns add, veth, bridge)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("network namespaces need iproute2's ip: %w", err)
	}
	sweepNetworks()
	seq := netnsSeq.Add(1)
	nw := &network{
		prefix: fmt.Sprintf("cf%06x%02x", os.Getpid()&0xffffff, seq&0xff),
		subnet: fmt.Sprintf("10.77.%d", 1+rand.IntN(254)),
		nodes:  n,
	}
	t.Cleanup(func() {
		if err := nw.destroy(); err != nil {
			t.Errorf("remove network namespaces: %v", err)
		}
	})
	br := nw.prefix + "b"
	cmds := [][]string{
		{"link", "add", br, "type", "bridge"},
		{"addr", "add", nw.subnet + ".1/24", "dev", br},
		{"link", "set", br, "up"},
	}
	for i := range n {
		ns, veth := nw.ns(i), nw.prefix+"v"+strconv.Itoa(i)
		cmds = append(cmds,
			[]string{"netns", "add", ns},
			[]string{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"link", "set", veth, "master", br, "up"},
			[]string{"-n", ns, "addr", "add", nw.host(i) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, c := range cmds {
		if err := ip(c...); err != nil {
			return nil, err
		}
	}
	return nw, nil
}

// ns is node i's namespace.
func (nw *network) ns(i int) string { return fmt.Sprintf("%s-n%d", nw.prefix, i) }

// host is node i's address.
func (nw *network) host(i int) string { return fmt.Sprintf("%s.%d", nw.subnet, 10+i) }

// drop makes node from drop every packet it sends to node to.
func (nw *network) drop(from, to int) error {
	return ip("-n", nw.ns(from), "route", "add", "blackhole", nw.host(to)+"/32")
}

// cut separates every node of a from every node of b, both ways.
func (nw *network) cut(a, b []int) error {
	for _, i := range a {
		for _, j := range b {
			if err := errors.Join(nw.drop(i, j), nw.drop(j, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// heal removes every partition.
func (nw *network) heal() error {
	var errs []error
	for i := range nw.nodes {
		errs = append(errs, ip("-n", nw.ns(i), "route", "flush", "type", "blackhole"))
	}
	return errors.Join(errs...)
}

// destroy removes the namespaces (and with them the veths) and the
// bridge.
func (nw *network) destroy() error {
	var errs []error
	for i := range nw.nodes {
		if nsExists(nw.ns(i)) {
			errs = append(errs, ip("netns", "del", nw.ns(i)))
		}
	}
	if linkExists(nw.prefix + "b") {
		errs = append(errs, ip("link", "del", nw.prefix+"b"))
	}
	return errors.Join(errs...)
}

// sweepNetworks removes the namespaces and bridges of test processes that
// no longer run (a run killed before its cleanup).
func sweepNetworks() {
	out, _ := exec.Command("ip", "-o", "link", "show", "type", "bridge").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			if name := strings.TrimSuffix(f[1], ":"); deadOwner(name) {
				_ = ip("link", "del", name)
			}
		}
	}
	out, _ = exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && deadOwner(f[0]) {
			_ = ip("netns", "del", f[0])
		}
	}
}

// deadOwner reports whether name is one of newNetwork's ("cf" + 6 hex
// digits of a pid + ...) and that process is gone.
func deadOwner(name string) bool {
	if !strings.HasPrefix(name, "cf") || len(name) < 10 {
		return false
	}
	pid, err := strconv.ParseUint(name[2:8], 16, 32)
	if err != nil || int(pid) == os.Getpid()&0xffffff {
		return false
	}
	_, err = os.Stat(fmt.Sprintf("/proc/%d", pid))
	return os.IsNotExist(err)
}

func nsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

func linkExists(name string) bool {
	return exec.Command("ip", "link", "show", name).Run() == nil
}

// ip runs iproute2's ip with args.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
