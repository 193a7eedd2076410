package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Bounds of the [storage] and [raft] sizes.
const (
	mib = 1 << 20
	// maxMemTable is pebble's limit: MemTableSize must be < 4 GiB.
	maxMemTable = 4<<30 - 1
)

// validator collects problems.
type validator struct {
	c    *Config
	errs []error
}

func (v *validator) fail(key, format string, args ...any) {
	v.errs = append(v.errs, v.c.keyError(key, ErrInvalidValue, format, args...))
}

// intRange checks lo <= n <= hi.
func (v *validator) intRange(key string, n, lo, hi int, why string) {
	if n < lo || n > hi {
		v.fail(key, "%d is out of range; allowed %d to %d (%s)", n, lo, hi, why)
	}
}

// Validate checks the configuration and returns every problem joined with
// errors.Join. Each problem is a *KeyError wrapping ErrInvalidValue that
// names the key, the file or variable it came from, and what is allowed.
// What is checked depends on node.role: cluster settings matter to the
// control plane, pd_addr and namespaces to stores. Validate reads the file
// system only to check that TLS files exist.
func (c Config) Validate() error {
	v := &validator{c: &c}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		v.fail("log_level", "%q is not a level; use debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		v.fail("log_format", "%q is not a format; use text or json (or leave it empty for text under journald, JSON otherwise)", c.LogFormat)
	}
	if c.Node.ID == 0 {
		v.fail("node.id", "0 is not allowed; node IDs start at 1")
	}
	v.roles()
	if c.HasRole(RoleControlPlane) {
		v.cluster()
	}
	v.network()
	v.aliases()
	v.storage()
	v.raft()
	v.store()
	v.timeseries()
	return errors.Join(v.errs...)
}

func (v *validator) roles() {
	roles := v.c.Roles()
	if len(roles) == 0 {
		v.fail("node.role", "empty; use %q, %q or %q", RoleControlPlane, RoleStore, RoleControlPlane+","+RoleStore)
	}
	seen := map[string]bool{}
	for _, r := range roles {
		switch {
		case r != RoleControlPlane && r != RoleStore:
			v.fail("node.role", "unknown role %q; use %q, %q or both separated by a comma", r, RoleControlPlane, RoleStore)
		case seen[r]:
			v.fail("node.role", "role %q is listed twice", r)
		}
		seen[r] = true
	}
}

func (v *validator) cluster() {
	c := v.c
	if c.Cluster.ID == 0 {
		v.fail("cluster.id", "0 is not allowed; use the same cluster ID >= 1 on every node")
	}
	if len(c.Cluster.InitialMembers) == 0 {
		return
	}
	if !c.Cluster.Bootstrap {
		v.fail("cluster.initial_members", "must be empty when cluster.bootstrap = false: a joining node gets its members from member-add")
		return
	}
	members, err := c.Members()
	if err != nil {
		v.errs = append(v.errs, err)
		return
	}
	ids, addrs := map[uint64]bool{}, map[string]bool{}
	self := false
	for _, m := range members {
		if ids[m.ID] {
			v.fail("cluster.initial_members", "ID %d is listed twice; every member needs its own ID", m.ID)
			continue
		}
		if addrs[m.Addr] {
			v.fail("cluster.initial_members", "address %s is listed twice; every member needs its own raft address", m.Addr)
		}
		ids[m.ID], addrs[m.Addr] = true, true
		if m.ID != c.Node.ID {
			continue
		}
		self = true
		if host, _, err := net.SplitHostPort(c.Network.RaftAddr); err == nil && !unspecified(host) && m.Addr != c.Network.RaftAddr {
			v.fail("cluster.initial_members", "lists this node (ID %d) at %s but network.raft_addr is %s; make them equal", m.ID, m.Addr, c.Network.RaftAddr)
		}
	}
	if !self {
		v.fail("cluster.initial_members", "does not list this node (node.id = %d); add \"%d=HOST:RAFTPORT\" or fix node.id", c.Node.ID, c.Node.ID)
	}
}

// unspecified reports whether host is a wildcard listen host.
func unspecified(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

func (v *validator) network() {
	n := v.c.Network
	addrs := []struct {
		key, addr string
		dial      bool
	}{
		{"network.api_addr", n.APIAddr, false},
		{"network.raft_addr", n.RaftAddr, true},
		{"network.gossip_addr", n.GossipAddr, false},
	}
	for i, a := range addrs {
		if err := checkHostPort(a.addr, a.dial); err != nil {
			v.fail(a.key, "%q: %v", a.addr, err)
			continue
		}
		for _, b := range addrs[:i] {
			if samePort(a.addr, b.addr) {
				v.fail(a.key, "%s uses the same port as %s (%s); give each listener its own port", a.addr, b.key, b.addr)
			}
		}
	}
	v.tls("network.tls", n.TLS)
}

// samePort reports whether two valid listen addresses collide.
func samePort(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	return pa == pb && pa != "0" && (ha == hb || unspecified(ha) || unspecified(hb))
}

// checkHostPort checks HOST:PORT. A dial address needs a host and a port
// from 1 to 65535; a listen address may omit the host and use port 0.
func checkHostPort(addr string, dial bool) error {
	if strings.Contains(addr, "://") {
		return fmt.Errorf("write HOST:PORT without a scheme such as http://")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("not HOST:PORT (%v)", err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if dial && host == "" {
		return fmt.Errorf("missing host; other nodes must be able to reach it")
	}
	if dial && p == 0 {
		return fmt.Errorf("port 0 is not allowed; other nodes dial this address")
	}
	return nil
}

// tls checks one TLS section: all files or none, and the files exist.
func (v *validator) tls(section string, t TLS) {
	if !t.Enabled() {
		if t.RequireClientCert {
			v.fail(section+".require_client_cert", "true needs %s.cert_file, key_file and ca_file; set them or set require_client_cert = false", section)
		}
		return
	}
	files := []struct{ key, path string }{
		{section + ".cert_file", t.CertFile},
		{section + ".key_file", t.KeyFile},
		{section + ".ca_file", t.CAFile},
	}
	for _, f := range files {
		if f.path == "" {
			v.fail(f.key, "empty, but other %s files are set; set cert_file, key_file and ca_file together, or none to turn TLS off", section)
			continue
		}
		st, err := os.Stat(f.path)
		switch {
		case err != nil:
			v.fail(f.key, "%v; point it at a PEM file (\"centra certs init\" generates them)", err)
		case st.IsDir():
			v.fail(f.key, "%s is a directory; point it at a PEM file", f.path)
		}
	}
}

// aliases reports flaredb.toml keys that disagree with their
// chainfire.toml twins (Load makes them agree unless one source sets both).
func (v *validator) aliases() {
	c := v.c
	if c.Addr != "" && c.Addr != c.Network.APIAddr {
		v.fail("addr", "%q differs from network.api_addr %q; set only one of them", c.Addr, c.Network.APIAddr)
	}
	if c.DataDir != "" && c.Storage.DataDir != "" && c.DataDir != c.Storage.DataDir {
		v.fail("data_dir", "%q differs from storage.data_dir %q; set only one of them", c.DataDir, c.Storage.DataDir)
	}
	if (c.TLS.Enabled() || c.TLS.RequireClientCert) && c.TLS != c.Network.TLS {
		v.fail("tls", "[tls] differs from [network.tls]; set only one of them")
	}
}

func (v *validator) storage() {
	s := v.c.Storage
	if v.c.EffectiveDataDir() == "" {
		v.fail("storage.data_dir", "empty; set the directory that holds raft/ and state/")
	}
	if s.WriteBufferSize < mib || s.WriteBufferSize > maxMemTable {
		v.fail("storage.write_buffer_size", "%d is out of range; allowed %d (1 MiB) to %d (pebble's memtable limit, 4 GiB-1)", s.WriteBufferSize, mib, uint64(maxMemTable))
	}
	v.intRange("storage.max_write_buffer_number", s.MaxWriteBufferNumber, 2, 64, "below 2 writes stall during every flush")
	if s.BlockCacheSize < mib {
		v.fail("storage.block_cache_size", "%d is too small; use at least %d (1 MiB)", s.BlockCacheSize, mib)
	}
	v.intRange("storage.max_open_files", s.MaxOpenFiles, 64, 1<<24, "pebble keeps at least 64 tables open; -1 for unlimited is not supported")
	v.intRange("storage.bloom_filter_bits_per_key", s.BloomFilterBitsPerKey, 0, 64, "0 disables bloom filters, 10 gives about 1% false positives")
	v.intRange("storage.level0_file_num_compaction_trigger", s.Level0FileNumCompactionTrigger, 1, 100, "L0 read amplification that starts a compaction")
	v.intRange("storage.max_background_compactions", s.MaxBackgroundCompactions, 1, 64, "concurrent compactions")
	v.intRange("storage.max_background_flushes", s.MaxBackgroundFlushes, 1, 64, "accepted for compatibility")
	if s.SlowCompactionMs < 1 || s.SlowCompactionMs > 3600000 {
		v.fail("storage.slow_compaction_ms", "%d is out of range; allowed 1 to 3600000 (10000, 10 s, is the default)", s.SlowCompactionMs)
	}
	if s.QuotaBackendBytes > math.MaxInt64 {
		v.fail("storage.quota_backend_bytes", "%d is too large; give a size in bytes up to %d, or 0 to disable the quota", s.QuotaBackendBytes, int64(math.MaxInt64))
	}
}

func (v *validator) raft() {
	r := v.c.Raft
	if r.Role != RaftVoter && r.Role != RaftLearner {
		v.fail("raft.role", "%q is not a raft role; use %q or %q", r.Role, RaftVoter, RaftLearner)
	}
	if r.TickIntervalMs < 1 || r.TickIntervalMs > 10000 {
		v.fail("raft.tick_interval_ms", "%d is out of range; allowed 1 to 10000 (100 suits most clusters)", r.TickIntervalMs)
	}
	if r.HeartbeatTicks == 0 {
		v.fail("raft.heartbeat_ticks", "0 is not allowed; use 1 or more")
	}
	if r.ElectionTicks <= 2*r.HeartbeatTicks {
		v.fail("raft.election_ticks", "%d must be greater than 2 * raft.heartbeat_ticks (%d); 6 to 10 * heartbeat_ticks is usual", r.ElectionTicks, 2*r.HeartbeatTicks)
	}
	if r.SnapshotEntries == 0 {
		v.fail("raft.snapshot_entries", "0 would disable snapshots, so the raft log would never be compacted; use 1000 to 10000")
	}
	if r.MaxInMemLogSize != 0 && r.MaxInMemLogSize < mib {
		v.fail("raft.max_in_mem_log_size", "%d is too small; use 0 (unbounded) or at least %d (1 MiB)", r.MaxInMemLogSize, mib)
	}
}

// store checks the FlareDB keys, which only the store role uses.
func (v *validator) store() {
	c := v.c
	if !c.HasRole(RoleStore) {
		for _, k := range []struct {
			key string
			set bool
		}{
			{"store_id", c.StoreID != 0},
			{"pd_addr", len(c.PDAddr) > 0},
			{"peers", len(c.Peers) > 0},
			{"namespace_modes", len(c.NamespaceModes) > 0},
		} {
			if k.set {
				v.fail(k.key, "only the store role uses it, but node.role is %q; add %q to node.role or remove it", c.Node.Role, RoleStore)
			}
		}
		return
	}
	if !c.HasRole(RoleControlPlane) && len(c.PDAddr) == 0 {
		v.fail("pd_addr", "empty, but a store-only node must know where PD runs; set pd_addr = \"PD_HOST:2379\"")
	}
	for _, a := range c.PDAddr {
		if err := checkHostPort(a, true); err != nil {
			v.fail("pd_addr", "%q: %v", a, err)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.Peers)) {
		if _, err := parseID(id); err != nil {
			v.fail("peers", "key %q: %v; write peers as STORE_ID = \"HOST:PORT\"", id, err)
		}
		if err := checkHostPort(c.Peers[id], true); err != nil {
			v.fail("peers", "store %s address %q: %v", id, c.Peers[id], err)
		}
	}
	v.region()
	for _, ns := range slices.Sorted(maps.Keys(c.NamespaceModes)) {
		if mode := c.NamespaceModes[ns]; mode != NamespaceStrong && mode != NamespaceEventual {
			v.fail("namespace_modes", "namespace %q has mode %q; use %q or %q", ns, mode, NamespaceStrong, NamespaceEventual)
		}
	}
}

func (v *validator) region() {
	r := v.c.Region
	if r.SplitSize == 0 || r.SplitSize > r.MaxSize {
		v.fail("region.split_size", "%d must be between 1 and region.max_size (%d)", r.SplitSize, r.MaxSize)
	}
	if r.SplitKeys == 0 || r.SplitKeys > r.MaxKeys {
		v.fail("region.split_keys", "%d must be between 1 and region.max_keys (%d)", r.SplitKeys, r.MaxKeys)
	}
	if r.SplitCheckIntervalMs < 10 || r.SplitCheckIntervalMs > 3_600_000 {
		v.fail("region.split_check_interval_ms", "%d is out of range; allowed 10 to 3600000", r.SplitCheckIntervalMs)
	}
	if r.HeartbeatIntervalMs < 100 || r.HeartbeatIntervalMs > 3_600_000 {
		v.fail("region.heartbeat_interval_ms", "%d is out of range; allowed 100 to 3600000", r.HeartbeatIntervalMs)
	}
	if r.StoreHeartbeatIntervalMs < 100 || r.StoreHeartbeatIntervalMs > 3_600_000 {
		v.fail("region.store_heartbeat_interval_ms", "%d is out of range; allowed 100 to 3600000", r.StoreHeartbeatIntervalMs)
	}
	if r.PeerCheckIntervalMs < 100 || r.PeerCheckIntervalMs > 3_600_000 {
		v.fail("region.peer_check_interval_ms", "%d is out of range; allowed 100 to 3600000", r.PeerCheckIntervalMs)
	}
	if r.MaxSnapshotSending < 1 || r.MaxSnapshotSending > 128 {
		v.fail("region.max_snapshot_sending", "%d is out of range; allowed 1 to 128", r.MaxSnapshotSending)
	}
	if r.MaxSnapshotReceiving < 1 || r.MaxSnapshotReceiving > 128 {
		v.fail("region.max_snapshot_receiving", "%d is out of range; allowed 1 to 128", r.MaxSnapshotReceiving)
	}
}

// parseID parses a node or store ID, which must be >= 1.
func parseID(s string) (uint64, error) {
	id, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("ID %q is not a number", s)
	}
	if id == 0 {
		return 0, fmt.Errorf("ID 0 is not allowed; IDs start at 1")
	}
	return id, nil
}
