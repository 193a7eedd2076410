package config

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"
)

// TOML renders the effective configuration as a TOML file with each key's
// help as a comment and, for keys not at their default, where the value
// came from. Load reads the output back to the same configuration. Keys
// outside the chainfire.toml sections (store_id, addr, data_dir, pd_addr,
// [tls], [peers], [namespace_modes]) are written only when set.
func (c Config) TOML() ([]byte, error) {
	ix := keys()
	var top, rest []*KeyInfo
	for i := range ix.list {
		k := &ix.list[i]
		if optionalKey(k.Name) && isZero(k.get(&c)) {
			continue
		}
		if !strings.Contains(k.Name, ".") && k.Kind != KindMap {
			top = append(top, k)
		} else {
			rest = append(rest, k)
		}
	}

	var b bytes.Buffer
	b.WriteString("# Effective centra configuration: each key with its help text.\n")
	for _, k := range top {
		if err := c.renderKey(&b, k, k.Name); err != nil {
			return nil, err
		}
	}
	section := ""
	for _, k := range rest {
		if k.Kind == KindMap {
			comment(&b, "\n", k.Help)
			fmt.Fprintf(&b, "[%s]\n", k.Name)
			m := k.get(&c).(map[string]string)
			for _, name := range slices.Sorted(maps.Keys(m)) {
				fmt.Fprintf(&b, "%s = %s\n", tomlKey(name), tomlString(m[name]))
			}
			section = k.Name
			continue
		}
		dot := strings.LastIndex(k.Name, ".")
		if s := k.Name[:dot]; s != section {
			fmt.Fprintf(&b, "\n[%s]\n", s)
			section = s
		}
		if err := c.renderKey(&b, k, k.Name[dot+1:]); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// optionalKey reports whether name lies outside the chainfire.toml shape.
func optionalKey(name string) bool {
	return (!strings.Contains(name, ".") && name != "log_level") || strings.HasPrefix(name, "tls.")
}

func isZero(v any) bool {
	switch v := v.(type) {
	case string:
		return v == ""
	case bool:
		return !v
	case int:
		return v == 0
	case uint64:
		return v == 0
	}
	return isEmpty(v)
}

func (c *Config) renderKey(b *bytes.Buffer, k *KeyInfo, short string) error {
	comment(b, "", k.Help)
	if src, ok := c.sources[k.Name]; ok {
		fmt.Fprintf(b, "# (set by %s)\n", src)
	}
	var val string
	switch v := k.get(c).(type) {
	case string:
		val = tomlString(v)
	case uint64:
		if v > math.MaxInt64 {
			return c.keyError(k.Name, ErrInvalidValue, "%d does not fit in a TOML integer (max %d)", v, int64(math.MaxInt64))
		}
		val = fmt.Sprint(v)
	case []string:
		quoted := make([]string, len(v))
		for i, s := range v {
			quoted[i] = tomlString(s)
		}
		val = "[" + strings.Join(quoted, ", ") + "]"
	default:
		val = fmt.Sprint(v)
	}
	fmt.Fprintf(b, "%s = %s\n", short, val)
	return nil
}

// comment writes text as "# " lines wrapped at about 78 columns.
func comment(b *bytes.Buffer, lead, text string) {
	b.WriteString(lead)
	line := "#"
	for _, w := range strings.Fields(text) {
		if len(line)+1+len(w) > 78 && line != "#" {
			b.WriteString(line + "\n")
			line = "#"
		}
		line += " " + w
	}
	b.WriteString(line + "\n")
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func tomlKey(s string) string {
	if bareKey.MatchString(s) {
		return s
	}
	return tomlString(s)
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
