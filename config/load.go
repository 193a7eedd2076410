package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	gotoml "github.com/pelletier/go-toml/v2"
)

// LoadOptions says where Load reads settings from.
type LoadOptions struct {
	// File is the TOML config file. Empty means the CENTRA_CONFIG entry of
	// Env, and no file when that is unset too.
	File string
	// Env is the process environment in os.Environ form; the CLI passes
	// os.Environ(). Only CENTRA_* entries are read. nil reads none.
	Env []string
	// Flags maps a key ("network.api_addr") or a flag name
	// ("network-api-addr") to its value, for the flags the user set only.
	// Values may be typed (uint64, int, bool, string, []string,
	// map[string]string) or text in the form environment variables use.
	Flags map[string]any
}

// Precedence ranks of the sources, lowest first.
const (
	rankDefault = iota
	rankFile
	rankEnv
	rankFlag
)

// origin is where a key's value came from.
type origin struct {
	rank int
	desc string
}

// layer is one source's settings, keyed by key name, with typed values.
type layer struct {
	rank   int
	values map[string]any
	origin map[string]string
}

func newLayer(rank int) *layer {
	return &layer{rank: rank, values: map[string]any{}, origin: map[string]string{}}
}

// Load builds the configuration from Default(), then the file, then
// CENTRA_* environment variables, then flags; each overrides the one
// before. Tables ([peers], [namespace_modes]) merge entry by entry across
// sources; lists are replaced. A flaredb.toml key and its chainfire.toml
// twin (addr and network.api_addr, data_dir and storage.data_dir, [tls]
// and [network.tls]) are one setting: the higher source wins, and the two
// are copied to match. A file with flaredb.toml keys and no [node],
// [cluster] or [network] key defaults node.role to "store".
//
// Load rejects unknown keys, variables and flags and ill-typed values,
// naming the key, where it came from and what is expected; all such
// problems are reported together. It does not call Validate.
func Load(opts LoadOptions) (Config, error) {
	ix := keys()
	var errs []error

	defaults := newLayer(rankDefault)
	def := Default()
	for i := range ix.list {
		k := &ix.list[i]
		if v := k.get(&def); !isEmpty(v) {
			defaults.values[k.Name] = v
		}
	}
	layers := []*layer{defaults}

	path := opts.File
	if path == "" {
		path = lookupEnv(opts.Env, EnvConfigFile)
	}
	if path != "" {
		l, lerrs := ix.loadFile(path)
		errs = append(errs, lerrs...)
		layers = append(layers, l)
	}
	l, lerrs := ix.loadEnv(opts.Env)
	errs = append(errs, lerrs...)
	layers = append(layers, l)
	l, lerrs = ix.loadFlags(opts.Flags)
	errs = append(errs, lerrs...)
	layers = append(layers, l)
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}

	k := koanf.New(".")
	sources := map[string]origin{}
	for _, l := range layers {
		if err := k.Load(confmap.Provider(nest(l.values), ""), nil); err != nil {
			return Config{}, fmt.Errorf("config: merge settings: %w", err)
		}
		for name, desc := range l.origin {
			sources[name] = origin{rank: l.rank, desc: desc}
		}
	}
	var cfg Config
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return Config{}, fmt.Errorf("config: decode settings: %w", err)
	}
	if err := cfg.adjust(sources); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case []string:
		return len(v) == 0
	case map[string]string:
		return len(v) == 0
	}
	return false
}

func lookupEnv(env []string, name string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// nest turns {"network.api_addr": v} into {"network": {"api_addr": v}}.
// Key names come from the key table, so map entries (which may contain
// dots) are never split.
func nest(flat map[string]any) map[string]any {
	out := map[string]any{}
	for name, v := range flat {
		parts := strings.Split(name, ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		if mv, ok := v.(map[string]string); ok {
			anyMap := make(map[string]any, len(mv))
			for k, s := range mv {
				anyMap[k] = s
			}
			v = anyMap
		}
		m[parts[len(parts)-1]] = v
	}
	return out
}

// loadFile reads a TOML file into a layer, checking every key and type.
func (ix *keyIndex) loadFile(path string) (*layer, []error) {
	l := newLayer(rankFile)
	fk := koanf.New(".")
	if err := fk.Load(file.Provider(path), toml.Parser()); err != nil {
		var de *gotoml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return l, []error{fmt.Errorf("%w: %s:%d:%d: %v; fix the TOML syntax there", ErrConfigFile, path, row, col, de)}
		}
		return l, []error{fmt.Errorf("%w: %v; check the --config flag or %s", ErrConfigFile, err, EnvConfigFile)}
	}
	src := "file " + path
	var errs []error
	var walk func(m map[string]any, prefix string)
	walk = func(m map[string]any, prefix string) {
		for _, name := range slices.Sorted(maps.Keys(m)) {
			full, raw := prefix+name, m[name]
			if k := ix.byName[full]; k != nil {
				l.set(k, raw, false, src, &errs)
				continue
			}
			sub, isTable := raw.(map[string]any)
			switch {
			case ix.sections[full] && isTable:
				walk(sub, full+".")
			case ix.sections[full]:
				errs = append(errs, &KeyError{Key: full, Source: src, Err: ErrInvalidType,
					Reason: fmt.Sprintf("got %s; expected a table [%s]", describe(raw), full)})
			case isTable && len(sub) > 0:
				// An unknown table: report its keys, which may be
				// known keys under a misspelt section.
				walk(sub, full+".")
			default:
				errs = append(errs, &KeyError{Key: full, Source: src, Err: ErrUnknownKey,
					Reason: "unknown key" + didYouMean(suggest(full, ix.names()))})
			}
		}
	}
	walk(fk.Raw(), "")
	return l, errs
}

// set coerces raw for k and records it, or appends the error.
func (l *layer) set(k *KeyInfo, raw any, text bool, src string, errs *[]error) {
	v, err := k.coerce(raw, text)
	if err != nil {
		*errs = append(*errs, &KeyError{Key: k.Name, Source: src, Err: ErrInvalidType, Reason: err.Error()})
		return
	}
	l.values[k.Name] = v
	l.origin[k.Name] = src
}

// loadEnv reads CENTRA_* variables into a layer.
func (ix *keyIndex) loadEnv(environ []string) (*layer, []error) {
	l := newLayer(rankEnv)
	var errs []error
	envNames := make([]string, 0, len(ix.list))
	for _, k := range ix.list {
		envNames = append(envNames, k.Env)
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix) && name != EnvConfigFile && ix.byEnv[name] == nil {
			errs = append(errs, &KeyError{Key: name, Source: "environment", Err: ErrUnknownKey,
				Reason: "unknown variable (every CENTRA_ variable must name a setting; unset it)" + didYouMean(suggest(name, envNames))})
		}
	}
	p := env.Provider("", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			if k := ix.byEnv[name]; k != nil {
				return k.Name, value
			}
			return "", nil
		},
	})
	raw, err := p.Read()
	if err != nil {
		return l, []error{fmt.Errorf("config: read environment: %w", err)}
	}
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		k := ix.byName[name]
		l.set(k, raw[name], true, "environment variable "+k.Env, &errs)
	}
	return l, errs
}

// loadFlags reads the flags the user set into a layer.
func (ix *keyIndex) loadFlags(flags map[string]any) (*layer, []error) {
	l := newLayer(rankFlag)
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(flags)) {
		k := ix.byName[name]
		if k == nil {
			k = ix.byFlag[strings.TrimLeft(name, "-")]
		}
		if k == nil {
			errs = append(errs, &KeyError{Key: name, Source: "flags", Err: ErrUnknownKey,
				Reason: "unknown flag" + didYouMean(suggest(name, ix.names()))})
			continue
		}
		l.set(k, flags[name], true, "flag --"+k.Flag, &errs)
	}
	return l, errs
}

func (ix *keyIndex) names() []string {
	names := make([]string, 0, len(ix.list))
	for _, k := range ix.list {
		names = append(names, k.Name)
	}
	return names
}

func didYouMean(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", s)
}

// adjust applies the rules that span keys after merging: flaredb.toml
// aliases, the store-shaped role default and the derived node name.
// sources holds the keys set by the file, environment or flags.
func (c *Config) adjust(sources map[string]origin) error {
	c.sources = map[string]string{}
	for name, o := range sources {
		c.sources[name] = o.desc
	}
	rank := func(key string) (int, bool) {
		o, ok := sources[key]
		return o.rank, ok
	}
	if err := c.inferRole(sources); err != nil {
		return err
	}

	alias(c, rank, "addr", "network.api_addr", &c.Addr, &c.Network.APIAddr)
	alias(c, rank, "data_dir", "storage.data_dir", &c.DataDir, &c.Storage.DataDir)
	alias(c, rank, "tls.cert_file", "network.tls.cert_file", &c.TLS.CertFile, &c.Network.TLS.CertFile)
	alias(c, rank, "tls.key_file", "network.tls.key_file", &c.TLS.KeyFile, &c.Network.TLS.KeyFile)
	alias(c, rank, "tls.ca_file", "network.tls.ca_file", &c.TLS.CAFile, &c.Network.TLS.CAFile)
	alias(c, rank, "tls.require_client_cert", "network.tls.require_client_cert",
		&c.TLS.RequireClientCert, &c.Network.TLS.RequireClientCert)

	if _, ok := c.sources["node.name"]; !ok || c.Node.Name == "" {
		c.Node.Name = fmt.Sprintf("centra-%d", c.Node.ID)
	}
	if len(c.Cluster.InitialMembers) == 0 {
		c.Cluster.InitialMembers = nil
	}
	if len(c.PDAddr) == 0 {
		c.PDAddr = nil
	}
	if len(c.Peers) == 0 {
		c.Peers = nil
	}
	if len(c.NamespaceModes) == 0 {
		c.NamespaceModes = nil
	}
	if _, set := rank("network.raft_addr"); !set && c.HasRole(RoleStore) && !c.HasRole(RoleControlPlane) {
		c.Network.RaftAddr = storeRaftAddr(c.Network.APIAddr, c.Network.RaftAddr)
	}
	return nil
}

// flaredbKeys are the top-level keys only flaredb.toml has; controlPlaneKeys
// the section only a control-plane node needs.
var (
	flaredbKeys      = []string{"store_id", "addr", "data_dir", "pd_addr", "tls", "peers", "namespace_modes"}
	controlPlaneKeys = []string{"cluster"}
)

// inferRole sets node.role to store when it is not set and the file holds
// flaredb.toml keys, whatever else it holds ([network] raft_addr, [raft],
// [storage]: a store uses them too). A file that also holds [cluster]
// describes a control-plane node as well: it must say which with
// node.role. The inference is recorded as node.role's source, which
// `centra config check` prints.
func (c *Config) inferRole(sources map[string]origin) error {
	if _, set := sources["node.role"]; set {
		return nil
	}
	fileKeys := func(prefixes []string) (names []string, desc string) {
		for name, o := range sources {
			for _, p := range prefixes {
				if o.rank == rankFile && (name == p || strings.HasPrefix(name, p+".")) {
					names, desc = append(names, name), o.desc
				}
			}
		}
		slices.Sort(names)
		return names, desc
	}
	flare, desc := fileKeys(flaredbKeys)
	if len(flare) == 0 {
		return nil
	}
	if cp, _ := fileKeys(controlPlaneKeys); len(cp) > 0 {
		return fmt.Errorf("%w: node.role: %s has flaredb.toml keys (%s) and chainfire.toml's [cluster] (%s), so it could describe a store or a control-plane node; set [node] role = \"store\", \"control_plane\" or \"control_plane,store\"",
			ErrInvalidValue, desc, strings.Join(flare, ", "), strings.Join(cp, ", "))
	}
	c.Node.Role = RoleStore
	c.sources["node.role"] = fmt.Sprintf("inference: the flaredb.toml keys %s in %s make this node a store", strings.Join(flare, ", "), desc)
	return nil
}

// storeRaftAddr is a store-only node's raft address when none is
// configured: the API address's host with the next port (etcd's 2379/2380
// pairing), so the runbook's flaredb.toml, which names only addr, gives
// region replicas an address other stores can reach.
func storeRaftAddr(api, fallback string) string {
	host, port, err := net.SplitHostPort(api)
	if err != nil {
		return fallback
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p >= 65535 {
		return fallback
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1))
}

// alias makes a flaredb.toml key and its chainfire.toml twin agree: the
// one set by the higher source wins. When both come from the same source
// they are left as they are, and Validate reports a mismatch.
func alias[T comparable](c *Config, rank func(string) (int, bool), short, long string, shortV, longV *T) {
	sr, sSet := rank(short)
	lr, lSet := rank(long)
	switch {
	case !sSet:
	case !lSet || sr > lr:
		*longV = *shortV
		c.copySources(short, long)
	case sr < lr:
		*shortV = *longV
		c.copySources(long, short)
	}
}

// copySources records that key to got its value from key from.
func (c *Config) copySources(from, to string) {
	c.sources[to] = c.sources[from]
}
