package config

import (
	"errors"
	"fmt"
)

// Sentinel errors. Load and Validate wrap them in *KeyError; check them
// with errors.Is.
var (
	// ErrConfigFile reports a config file that cannot be read or parsed.
	ErrConfigFile = errors.New("config: cannot load config file")
	// ErrUnknownKey reports a key, environment variable or flag that no
	// setting is declared for.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrInvalidType reports a value of the wrong type, such as a string
	// where a number belongs.
	ErrInvalidType = errors.New("config: wrong value type")
	// ErrInvalidValue reports a well-typed value outside what is allowed.
	ErrInvalidValue = errors.New("config: invalid value")
)

// KeyError describes a problem with one setting. Its message names the key,
// where the value came from and what is allowed.
type KeyError struct {
	// Key is the config key ("network.api_addr"), or the environment
	// variable or flag name when no key matches it.
	Key string
	// Source is where the value came from: "file PATH",
	// "environment variable CENTRA_X", "flag --x"; empty for defaults.
	Source string
	// Reason says what is wrong and how to fix it.
	Reason string
	// Err is one of the package's sentinel errors.
	Err error
}

// Error implements error.
func (e *KeyError) Error() string {
	if e.Source == "" || e.Source == "default" {
		return fmt.Sprintf("config: %s: %s", e.Key, e.Reason)
	}
	return fmt.Sprintf("config: %s (from %s): %s", e.Key, e.Source, e.Reason)
}

// Unwrap returns the sentinel error.
func (e *KeyError) Unwrap() error { return e.Err }

// keyError builds a KeyError for key, taking the source recorded by Load.
func (c *Config) keyError(key string, sentinel error, format string, args ...any) *KeyError {
	return &KeyError{Key: key, Source: c.Source(key), Reason: fmt.Sprintf(format, args...), Err: sentinel}
}
