package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lmittmann/tint"
	"github.com/mattn/go-isatty"
)

// ParseLevel parses a log_level value (debug, info, warn or error).
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToLower(s))); err != nil {
		return 0, fmt.Errorf("log_level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// Log formats (log_format).
const (
	// LogFormatText is one line per record in the runbooks' shape,
	// "LEVEL component: message, k=v, k=v" (see TextHandler).
	LogFormatText = "text"
	// LogFormatJSON is one slog JSON object per line.
	LogFormatJSON = "json"
)

// NewLogger returns the process logger for log_format (see config.Config's
// LogFormat): "text" or "json" as asked; empty picks text when stderr is
// journald's stream (systemd sets JOURNAL_STREAM), colourised
// human-readable lines on a terminal (tint), JSON otherwise (files, CI).
func NewLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	f, _ := w.(*os.File)
	journal := f != nil && isJournalStream(f, os.Getenv("JOURNAL_STREAM"))
	switch {
	case format == LogFormatText || (format == "" && journal):
		// journald stamps every line itself.
		return slog.New(NewTextHandler(w, level, !journal))
	case format == "" && f != nil && isatty.IsTerminal(f.Fd()):
		return slog.New(tint.NewHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// isJournalStream reports whether f is the journald stream that systemd
// named in JOURNAL_STREAM ("DEVICE:INODE"); a JOURNAL_STREAM inherited by a
// process whose stderr was redirected elsewhere does not count.
func isJournalStream(f *os.File, env string) bool {
	dev, ino, ok := strings.Cut(env, ":")
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	return strconv.FormatUint(uint64(st.Dev), 10) == dev && strconv.FormatUint(st.Ino, 10) == ino
}

// TextHandler writes records as the runbooks quote them:
//
//	[TIME ]LEVEL component: message, k=v, k=v
//
// LEVEL is DEBUG, INFO, WARN or ERROR; component is the record's
// "component" attribute ("centra" without one). Values with spaces, quotes,
// commas or "=" are Go-quoted. Groups prefix their keys ("g.k=v"). So
// `grep ERROR` finds errors, the runbooks' greps find their phrases, and
// awk's $NF is the last k=v pair.
type TextHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	level slog.Leveler
	time  bool
	// component is the component set by WithAttrs, "" if none yet.
	component string
	// pre is the rendered ", k=v" text of WithAttrs attributes.
	pre    string
	prefix string // group prefix for later attributes, "g." form
}

// NewTextHandler returns a TextHandler writing to w; withTime starts each
// line with an RFC 3339 timestamp (leave it off under journald, which
// stamps lines itself).
func NewTextHandler(w io.Writer, level slog.Leveler, withTime bool) *TextHandler {
	return &TextHandler{mu: &sync.Mutex{}, w: w, level: level, time: withTime}
}

// Enabled implements slog.Handler.
func (h *TextHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// WithAttrs implements slog.Handler.
func (h *TextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	var b strings.Builder
	for _, a := range as {
		h2.component = h2.appendAttr(&b, h2.prefix, a, h2.component)
	}
	h2.pre += b.String()
	return &h2
}

// WithGroup implements slog.Handler.
func (h *TextHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix += name + "."
	return &h2
}

// Handle implements slog.Handler.
func (h *TextHandler) Handle(_ context.Context, r slog.Record) error {
	var attrs strings.Builder
	component := h.component
	r.Attrs(func(a slog.Attr) bool {
		component = h.appendAttr(&attrs, h.prefix, a, component)
		return true
	})
	if component == "" {
		component = "centra"
	}
	var b strings.Builder
	if h.time && !r.Time.IsZero() {
		b.WriteString(r.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00 "))
	}
	b.WriteString(levelName(r.Level))
	b.WriteByte(' ')
	b.WriteString(component)
	b.WriteString(": ")
	b.WriteString(strings.ReplaceAll(r.Message, "\n", " "))
	b.WriteString(h.pre)
	b.WriteString(attrs.String())
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

// appendAttr renders a as ", prefix+key=value" into b, except a top-level
// "component", which it returns instead of rendering; otherwise it returns
// component unchanged.
func (h *TextHandler) appendAttr(b *strings.Builder, prefix string, a slog.Attr, component string) string {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return component
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			component = h.appendAttr(b, p, ga, component)
		}
		return component
	}
	if prefix == "" && a.Key == "component" {
		return a.Value.String()
	}
	b.WriteString(", ")
	b.WriteString(prefix)
	b.WriteString(a.Key)
	b.WriteByte('=')
	b.WriteString(textValue(a.Value))
	return component
}

// textValue renders v, quoting it when it would not read as one k=v token.
func textValue(v slog.Value) string {
	var s string
	switch v.Kind() {
	case slog.KindTime:
		s = v.Time().Format(time.RFC3339Nano)
	case slog.KindDuration:
		s = v.Duration().String()
	default:
		s = v.String()
	}
	if s == "" || strings.ContainsAny(s, " \t\n\",=") {
		return strconv.Quote(s)
	}
	return s
}

// levelName is the level in upper case as the runbooks grep it (WARN, not
// WARNING).
func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARN"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}
