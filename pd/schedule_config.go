package pd

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("30m0s"), as TiKV PD's typeutil.Duration does.
type Duration struct{ time.Duration }

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string such as "30m" or "1h0m0s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"30m\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration string such as \"30m\", got %q", s)
	}
	d.Duration = v
	return nil
}

// ScheduleConfig is TiKV PD's schedule configuration (GET and POST
// /pd/api/v1/config/schedule), with PD's kebab-case keys and defaults.
// Scheduling reads the limits, max-store-down-time, tolerant-size-ratio,
// low-space-ratio, leader-schedule-policy, halt-scheduling, the enable-*
// replica flags and store-limit; the merge, hot-region and v2 keys are
// stored and shown, with no effect.
type ScheduleConfig struct {
	MaxSnapshotCount          uint64   `json:"max-snapshot-count"`
	MaxPendingPeerCount       uint64   `json:"max-pending-peer-count"`
	MaxMergeRegionSize        uint64   `json:"max-merge-region-size"`
	MaxMergeRegionKeys        uint64   `json:"max-merge-region-keys"`
	SplitMergeInterval        Duration `json:"split-merge-interval"`
	PatrolRegionInterval      Duration `json:"patrol-region-interval"`
	MaxStoreDownTime          Duration `json:"max-store-down-time"`
	MaxStorePreparingTime     Duration `json:"max-store-preparing-time"`
	LeaderScheduleLimit       uint64   `json:"leader-schedule-limit"`
	LeaderSchedulePolicy      string   `json:"leader-schedule-policy"`
	RegionScheduleLimit       uint64   `json:"region-schedule-limit"`
	ReplicaScheduleLimit      uint64   `json:"replica-schedule-limit"`
	MergeScheduleLimit        uint64   `json:"merge-schedule-limit"`
	HotRegionScheduleLimit    uint64   `json:"hot-region-schedule-limit"`
	TolerantSizeRatio         float64  `json:"tolerant-size-ratio"`
	LowSpaceRatio             float64  `json:"low-space-ratio"`
	HighSpaceRatio            float64  `json:"high-space-ratio"`
	RegionScoreFormulaVersion string   `json:"region-score-formula-version"`
	StoreLimitVersion         string   `json:"store-limit-version"`
	HaltScheduling            bool     `json:"halt-scheduling"`
	EnableRemoveDownReplica   bool     `json:"enable-remove-down-replica,string"`
	EnableReplaceOfflineRepl  bool     `json:"enable-replace-offline-replica,string"`
	EnableMakeUpReplica       bool     `json:"enable-make-up-replica,string"`
	EnableRemoveExtraReplica  bool     `json:"enable-remove-extra-replica,string"`
	EnableLocationReplacement bool     `json:"enable-location-replacement,string"`
	EnableJointConsensus      bool     `json:"enable-joint-consensus,string"`
	EnableCrossTableMerge     bool     `json:"enable-cross-table-merge,string"`
	// StoreLimit overrides the default store limit (15 add-peer and
	// remove-peer per minute) by store ID.
	StoreLimit map[string]StoreLimitConfig `json:"store-limit"`
}

// StoreLimitConfig is one store's limit, in steps per minute (TiKV PD's
// store-limit entry).
type StoreLimitConfig struct {
	AddPeer    float64 `json:"add-peer"`
	RemovePeer float64 `json:"remove-peer"`
}

// DefaultScheduleConfig returns TiKV PD's defaults.
func DefaultScheduleConfig() ScheduleConfig {
	return ScheduleConfig{
		MaxSnapshotCount:          64,
		MaxPendingPeerCount:       64,
		MaxMergeRegionSize:        54,
		MaxMergeRegionKeys:        540000,
		SplitMergeInterval:        Duration{time.Hour},
		PatrolRegionInterval:      Duration{10 * time.Millisecond},
		MaxStoreDownTime:          Duration{30 * time.Minute},
		MaxStorePreparingTime:     Duration{48 * time.Hour},
		LeaderScheduleLimit:       4,
		LeaderSchedulePolicy:      "count",
		RegionScheduleLimit:       2048,
		ReplicaScheduleLimit:      64,
		MergeScheduleLimit:        8,
		HotRegionScheduleLimit:    4,
		LowSpaceRatio:             0.8,
		HighSpaceRatio:            0.7,
		RegionScoreFormulaVersion: "v2",
		StoreLimitVersion:         "v1",
		EnableRemoveDownReplica:   true,
		EnableReplaceOfflineRepl:  true,
		EnableMakeUpReplica:       true,
		EnableRemoveExtraReplica:  true,
		EnableLocationReplacement: true,
		EnableJointConsensus:      true,
		EnableCrossTableMerge:     true,
		StoreLimit:                map[string]StoreLimitConfig{},
	}
}

// Validate checks values that have a valid range.
func (c *ScheduleConfig) Validate() error {
	switch {
	case c.MaxStoreDownTime.Duration <= 0:
		return fmt.Errorf("config key %q must be positive", "max-store-down-time")
	case c.SplitMergeInterval.Duration < 0:
		return fmt.Errorf("config key %q must not be negative", "split-merge-interval")
	case c.PatrolRegionInterval.Duration < 0:
		return fmt.Errorf("config key %q must not be negative", "patrol-region-interval")
	case c.MaxStorePreparingTime.Duration < 0:
		return fmt.Errorf("config key %q must not be negative", "max-store-preparing-time")
	case c.LeaderSchedulePolicy != "count" && c.LeaderSchedulePolicy != "size":
		return fmt.Errorf("config key %q must be \"count\" or \"size\", not %q", "leader-schedule-policy", c.LeaderSchedulePolicy)
	case c.RegionScoreFormulaVersion != "v1" && c.RegionScoreFormulaVersion != "v2":
		return fmt.Errorf("config key %q must be \"v1\" or \"v2\", not %q", "region-score-formula-version", c.RegionScoreFormulaVersion)
	case c.StoreLimitVersion != "v1" && c.StoreLimitVersion != "v2":
		return fmt.Errorf("config key %q must be \"v1\" or \"v2\", not %q", "store-limit-version", c.StoreLimitVersion)
	case c.LowSpaceRatio <= 0 || c.LowSpaceRatio >= 1:
		return fmt.Errorf("config key %q must be between 0 and 1 (exclusive), not %v", "low-space-ratio", c.LowSpaceRatio)
	case c.HighSpaceRatio <= 0 || c.HighSpaceRatio >= 1:
		return fmt.Errorf("config key %q must be between 0 and 1 (exclusive), not %v", "high-space-ratio", c.HighSpaceRatio)
	case c.HighSpaceRatio > c.LowSpaceRatio:
		return fmt.Errorf("config key %q (%v) must not exceed %q (%v)", "high-space-ratio", c.HighSpaceRatio, "low-space-ratio", c.LowSpaceRatio)
	case c.TolerantSizeRatio < 0:
		return fmt.Errorf("config key %q must not be negative", "tolerant-size-ratio")
	}
	for id, l := range c.StoreLimit {
		if _, err := strconv.ParseUint(id, 10, 64); err != nil {
			return fmt.Errorf("config key %q: %q is not a store id", "store-limit", id)
		}
		if l.AddPeer <= 0 || l.RemovePeer <= 0 {
			return fmt.Errorf("config key %q: store %s: add-peer and remove-peer must be positive", "store-limit", id)
		}
	}
	return nil
}

// StringList is a list of strings written in JSON as one comma-separated
// string, as PD's typeutil.StringSlice.
type StringList []string

// MarshalJSON writes "a,b".
func (s StringList) MarshalJSON() ([]byte, error) { return json.Marshal(strings.Join(s, ",")) }

// UnmarshalJSON reads "a,b" or ["a","b"].
func (s *StringList) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		*s = list
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("want a comma-separated string, got %s", b)
	}
	*s = nil
	if str != "" {
		*s = strings.Split(str, ",")
	}
	return nil
}

// ReplicationConfig is TiKV PD's replication configuration (GET and POST
// /pd/api/v1/config/replicate). max-replicas guards store removal.
type ReplicationConfig struct {
	MaxReplicas          uint64     `json:"max-replicas"`
	LocationLabels       StringList `json:"location-labels"`
	StrictlyMatchLabel   bool       `json:"strictly-match-label,string"`
	EnablePlacementRules bool       `json:"enable-placement-rules,string"`
	IsolationLevel       string     `json:"isolation-level"`
}

// DefaultReplicationConfig returns TiKV PD's defaults.
func DefaultReplicationConfig() ReplicationConfig {
	return ReplicationConfig{MaxReplicas: 3, LocationLabels: StringList{}, EnablePlacementRules: true}
}

// Validate checks the values.
func (c *ReplicationConfig) Validate() error {
	if c.MaxReplicas < 1 {
		return fmt.Errorf("config key %q must be at least 1", "max-replicas")
	}
	return nil
}

// mergeConfig merges the JSON object body into *dst (a pointer to a config
// struct), key by key: an unknown key or a value of the wrong type is an
// error naming the key, and nothing is changed. The caller validates.
func mergeConfig(dst any, body []byte) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return fmt.Errorf("%w: the body must be a JSON object of config keys", ErrInvalidArgument)
	}
	v := reflect.ValueOf(dst).Elem()
	fields := configFields(v.Type())
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := reflect.New(v.Type()).Elem()
	out.Set(v)
	for _, k := range keys {
		f, ok := fields[k]
		if !ok {
			return fmt.Errorf("%w: unknown config key %q", ErrInvalidArgument, k)
		}
		fv := out.Field(f.index)
		raw := obj[k]
		if f.asString && fv.Kind() == reflect.Bool {
			var b bool
			if err := json.Unmarshal(raw, &b); err != nil {
				var s string
				if json.Unmarshal(raw, &s) != nil {
					return fmt.Errorf("%w: config key %q: want \"true\" or \"false\", got %s", ErrInvalidArgument, k, raw)
				}
				if b, err = strconv.ParseBool(s); err != nil {
					return fmt.Errorf("%w: config key %q: want \"true\" or \"false\", got %s", ErrInvalidArgument, k, raw)
				}
			}
			fv.SetBool(b)
			continue
		}
		nv := reflect.New(fv.Type())
		if err := json.Unmarshal(raw, nv.Interface()); err != nil {
			return fmt.Errorf("%w: config key %q: %s", ErrInvalidArgument, k, typeMessage(fv.Type(), raw, err))
		}
		fv.Set(nv.Elem())
	}
	v.Set(out)
	return nil
}

func typeMessage(t reflect.Type, raw json.RawMessage, err error) string {
	switch t.Kind() {
	case reflect.Uint64, reflect.Uint32, reflect.Int, reflect.Int64:
		return fmt.Sprintf("want a non-negative integer, got %s", raw)
	case reflect.Float64:
		return fmt.Sprintf("want a number, got %s", raw)
	case reflect.String:
		return fmt.Sprintf("want a string, got %s", raw)
	case reflect.Bool:
		return fmt.Sprintf("want true or false, got %s", raw)
	}
	return err.Error()
}

type configField struct {
	index    int
	asString bool
}

// configFields maps a config struct's JSON keys to its fields.
func configFields(t reflect.Type) map[string]configField {
	m := make(map[string]configField, t.NumField())
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		m[name] = configField{index: i, asString: opts == "string"}
	}
	return m
}
