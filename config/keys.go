package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// EnvPrefix starts every environment variable that sets a key.
const EnvPrefix = "CENTRA_"

// EnvConfigFile names the config file, like the --config flag. It is the
// one CENTRA_ variable that is not a key.
const EnvConfigFile = "CENTRA_CONFIG"

// Kind is the value type of a key; the CLI picks its flag type from it.
type Kind int

// Kinds of key values.
const (
	// KindString is a string.
	KindString Kind = iota + 1
	// KindBool is true or false.
	KindBool
	// KindInt is a signed integer (Go int).
	KindInt
	// KindUint is a non-negative integer (Go uint64).
	KindUint
	// KindList is a list of strings: a TOML array or "a,b,c".
	KindList
	// KindMap is a string-to-string table: a TOML table or "k=v,k2=v2".
	KindMap
)

// String returns the kind's name as shown in help and errors.
func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindBool:
		return "bool"
	case KindInt:
		return "int"
	case KindUint:
		return "uint"
	case KindList:
		return "list"
	case KindMap:
		return "map"
	default:
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
}

// expected describes the values a kind accepts, for error messages.
func (k Kind) expected() string {
	switch k {
	case KindString:
		return "a string"
	case KindBool:
		return "a boolean (true or false)"
	case KindInt:
		return "an integer"
	case KindUint:
		return "a non-negative integer"
	case KindList:
		return "an array of strings or a comma-separated string"
	default:
		return "a table of strings (or \"key=value,key2=value2\")"
	}
}

// KeyInfo describes one setting. The key, its flag and its environment
// variable are one setting declared once, by the koanf and help tags of the
// Config struct.
type KeyInfo struct {
	// Name is the dotted key as written in the file: "network.api_addr".
	Name string
	// Flag is the CLI flag without dashes: "network-api-addr".
	Flag string
	// Env is the environment variable: "CENTRA_NETWORK_API_ADDR".
	Env string
	// Help documents the key for operators.
	Help string
	// Default is the zero-config value rendered as text ("" when empty).
	// Flags show it as their default, but Load takes defaults from
	// Default(), so pass only flags the user set.
	Default string
	// Kind is the value type.
	Kind Kind

	index []int // field path from Config
}

// keyIndex is the key table with its lookups.
type keyIndex struct {
	list     []KeyInfo
	byName   map[string]*KeyInfo
	byEnv    map[string]*KeyInfo
	byFlag   map[string]*KeyInfo
	sections map[string]bool // "node", "network.tls", ...
}

var keys = sync.OnceValue(buildKeys)

// Keys returns every setting in declaration order.
func Keys() []KeyInfo {
	return slices.Clone(keys().list)
}

func buildKeys() *keyIndex {
	ix := &keyIndex{
		byName:   map[string]*KeyInfo{},
		byEnv:    map[string]*KeyInfo{},
		byFlag:   map[string]*KeyInfo{},
		sections: map[string]bool{},
	}
	def := reflect.ValueOf(Default())
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("koanf")
			if tag == "" {
				continue
			}
			name := prefix + tag
			idx := append(slices.Clone(index), i)
			if f.Type.Kind() == reflect.Struct {
				ix.sections[name] = true
				walk(f.Type, name+".", idx)
				continue
			}
			ki := KeyInfo{
				Name:  name,
				Flag:  strings.NewReplacer(".", "-", "_", "-").Replace(name),
				Env:   EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, ".", "_")),
				Help:  f.Tag.Get("help"),
				Kind:  kindOf(f.Type),
				index: idx,
			}
			ki.Default = formatText(def.FieldByIndex(idx).Interface())
			ix.list = append(ix.list, ki)
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	for i := range ix.list {
		k := &ix.list[i]
		ix.byName[k.Name] = k
		ix.byEnv[k.Env] = k
		ix.byFlag[k.Flag] = k
	}
	return ix
}

func kindOf(t reflect.Type) Kind {
	switch t.Kind() {
	case reflect.String:
		return KindString
	case reflect.Bool:
		return KindBool
	case reflect.Int:
		return KindInt
	case reflect.Uint64:
		return KindUint
	case reflect.Slice:
		return KindList
	case reflect.Map:
		return KindMap
	default:
		panic("config: field type " + t.String() + " has no Kind; extend kindOf")
	}
}

// formatText renders a typed value as the text Load accepts from
// environment variables and flags.
func formatText(v any) string {
	switch v := v.(type) {
	case []string:
		return strings.Join(v, ",")
	case map[string]string:
		pairs := make([]string, 0, len(v))
		for k, val := range v {
			pairs = append(pairs, k+"="+val)
		}
		sort.Strings(pairs)
		return strings.Join(pairs, ",")
	default:
		return fmt.Sprint(v)
	}
}

// get returns the value of k in c.
func (k *KeyInfo) get(c *Config) any {
	return reflect.ValueOf(c).Elem().FieldByIndex(k.index).Interface()
}

// coerce converts a raw value to the Go type of k. Typed values (TOML,
// flag values) must have a matching type; text values (environment
// variables, flags given as strings) are parsed when text is true. Lists
// and maps always accept their comma-separated text form.
func (k *KeyInfo) coerce(raw any, text bool) (any, error) {
	if s, ok := raw.(string); ok && (text || k.Kind == KindString || k.Kind == KindList || k.Kind == KindMap) {
		return k.parseText(s)
	}
	rv := reflect.ValueOf(raw)
	switch k.Kind {
	case KindBool:
		if b, ok := raw.(bool); ok {
			return b, nil
		}
	case KindUint:
		switch {
		case rv.CanUint():
			return rv.Uint(), nil
		case rv.CanInt() && rv.Int() >= 0:
			return uint64(rv.Int()), nil
		case rv.CanInt():
			return nil, fmt.Errorf("got %d; expected %s", rv.Int(), k.Kind.expected())
		}
	case KindInt:
		switch {
		case rv.CanInt() && rv.Int() == int64(int(rv.Int())):
			return int(rv.Int()), nil
		case rv.CanUint() && rv.Uint() <= uint64(maxInt):
			return int(rv.Uint()), nil
		}
	case KindList:
		return coerceList(raw, k.Kind)
	case KindMap:
		if list, ok := raw.([]string); ok { // a repeated flag
			return k.parseText(strings.Join(list, ","))
		}
		return coerceMap(raw, k.Kind)
	}
	return nil, typeMismatch(raw, k.Kind)
}

const maxInt = int(^uint(0) >> 1)

func coerceList(raw any, kind Kind) (any, error) {
	switch v := raw.(type) {
	case []string:
		return slices.Clone(v), nil
	case []any:
		out := make([]string, 0, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("element %d is %s; expected %s", i, describe(e), kind.expected())
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, typeMismatch(raw, kind)
}

func coerceMap(raw any, kind Kind) (any, error) {
	switch v := raw.(type) {
	case map[string]string:
		return maps.Clone(v), nil
	case map[string]any:
		out := make(map[string]string, len(v))
		for name, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("entry %q is %s; expected a string", name, describe(e))
			}
			out[name] = s
		}
		return out, nil
	}
	return nil, typeMismatch(raw, kind)
}

// parseText parses the text form of k's value.
func (k *KeyInfo) parseText(s string) (any, error) {
	switch k.Kind {
	case KindString:
		return s, nil
	case KindBool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("cannot parse %q; expected %s", s, k.Kind.expected())
		}
		return b, nil
	case KindUint:
		u, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("cannot parse %q; expected %s", s, k.Kind.expected())
		}
		return u, nil
	case KindInt:
		i, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("cannot parse %q; expected %s", s, k.Kind.expected())
		}
		return i, nil
	case KindList:
		return splitList(s), nil
	default:
		out := map[string]string{}
		for _, pair := range splitList(s) {
			name, val, ok := strings.Cut(pair, "=")
			if !ok || strings.TrimSpace(name) == "" {
				return nil, fmt.Errorf("entry %q is not name=value; expected %s", pair, k.Kind.expected())
			}
			out[strings.TrimSpace(name)] = strings.TrimSpace(val)
		}
		return out, nil
	}
}

// splitList splits "a, b,,c" into [a b c].
func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func typeMismatch(raw any, kind Kind) error {
	msg := fmt.Sprintf("got %s; expected %s", describe(raw), kind.expected())
	if s, ok := raw.(string); ok && (kind == KindUint || kind == KindInt || kind == KindBool) {
		if _, err := (&KeyInfo{Kind: kind}).parseText(s); err == nil {
			msg += " (remove the quotes)"
		}
	}
	return fmt.Errorf("%s", msg)
}

// describe names a decoded TOML value for error messages.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case bool:
		return fmt.Sprintf("boolean %t", v)
	case int64, int, uint64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("%T %v", v, v)
	}
}

// suggest returns the known name closest to name, or "" when none is
// close. A key written in the wrong section is matched by its last part.
func suggest(name string, known []string) string {
	leaf := name[strings.LastIndex(name, ".")+1:]
	for _, k := range known {
		if k != name && k[strings.LastIndex(k, ".")+1:] == leaf {
			return k
		}
	}
	best, bestDist := "", len(name)/3+2
	for _, k := range known {
		if d := levenshtein(name, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
