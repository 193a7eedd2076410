// Package cli is centra's command line: one urfave/cli app whose command
// groups each live in their own file.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
)

// Version is set at build time (-ldflags "-X .../internal/cli.Version=...").
var Version = "dev"

// NewApp returns the centra CLI.
func NewApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "centra",
		Usage:     "self-hosted control plane store: Chainfire (etcd-compatible KV) and FlareDB",
		Version:   Version,
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*cli.Command{
			serveCommand(),
			kvCommand(),
			clusterCommand(),
			flaredbCommand(),
			tsCommand(),
			pdCommand(),
			certsCommand(),
			snapshotCommand(),
			debugCommand(),
			configCommand(),
			installLinksCommand(),
			versionCommand(),
		},
		// Errors are printed once, on one line, by Run.
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: true,
		// --node NAME=IP,IP,DNS must keep its commas.
		DisableSliceFlagSeparator: true,
	}
}

// Run runs the CLI with args (args[0] is the program name) and returns the
// process exit code. Errors are printed as one line on stderr.
func Run(args []string, stdout, stderr io.Writer) int {
	app := NewApp(stdout, stderr)
	if err := app.Run(interleaveFlags(app, multiCall(args))); err != nil {
		fmt.Fprintf(stderr, "Error: %s\n", strings.TrimSpace(err.Error()))
		var coder cli.ExitCoder
		if errors.As(err, &coder) && coder.ExitCode() != 0 {
			return coder.ExitCode()
		}
		return 1
	}
	return 0
}

// multiCall rewrites the command line when centra runs under one of the
// runbooks' program names (through a symlink or a copy):
// chainfire-server/flaredb-server ARGS = centra serve ARGS;
// chainfire-client [FLAGS] member-list|status|... = centra cluster ...;
// chainfire-client [FLAGS] put|get|... = centra kv ...;
// flaredb-client [FLAGS] cluster-status|put|get|delete|scan = centra flaredb ....;
// rocksdb_ldb --db=DIR checkconsistency|repair = centra debug check|repair
// --data-dir DIR (repair with --yes, as ldb's repair acts).
func multiCall(args []string) []string {
	if len(args) == 0 {
		return args
	}
	var sub []string
	switch filepath.Base(args[0]) {
	case "chainfire-server", "flaredb-server":
		sub = []string{"serve"}
	case "chainfire-client":
		sub = chainfireClientCommand(args[1:])
	case "flaredb-client":
		sub = []string{"flaredb"}
	case "rocksdb_ldb":
		return ldbCommand(args[1:])
	default:
		return args
	}
	return append(append([]string{"centra"}, sub...), args[1:]...)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "centra %s (etcd API %s)\n", Version, "3.6")
			return nil
		},
	}
}

// exitf returns a one-line error for the user.
func exitf(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// stdoutOf returns the command's output writer.
func stdoutOf(c *cli.Context) io.Writer {
	if c.App.Writer != nil {
		return c.App.Writer
	}
	return os.Stdout
}

// interleaveFlags lets flags stand anywhere on the command line, as etcdctl
// and the runbooks write them (`centra kv put foo bar --endpoint X`,
// `chainfire-client --endpoint X member-list`): urfave/cli only parses a
// command's flags between its name and the first positional argument, so
// every flag is moved right after the leaf command's name and the
// positional arguments follow a "--".
func interleaveFlags(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	takesValue := map[string]bool{}
	var collect func([]*cli.Command)
	collect = func(cmds []*cli.Command) {
		for _, c := range cmds {
			for _, f := range c.Flags {
				_, isBool := f.(*cli.BoolFlag)
				for _, n := range f.Names() {
					takesValue[n] = !isBool
				}
			}
			collect(c.Subcommands)
		}
	}
	collect(app.Commands)

	path := []string{args[0]}
	var flags, positional []string
	cmds := app.Commands
	leaf := false
	rest := args[1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		switch {
		case a == "--":
			positional = append(positional, rest[j+1:]...)
			j = len(rest)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && j+1 < len(rest) {
				flags = append(flags, rest[j+1])
				j++
			}
		case !leaf:
			var next *cli.Command
			for _, c := range cmds {
				if c.HasName(a) {
					next = c
				}
			}
			if next == nil {
				leaf = true
				positional = append(positional, a)
				continue
			}
			path = append(path, a)
			cmds = next.Subcommands
			leaf = len(cmds) == 0
		default:
			positional = append(positional, a)
		}
	}
	out := append(path, flags...)
	if len(positional) > 0 {
		out = append(append(out, "--"), positional...)
	}
	return out
}

// chainfireClientCommand picks the centra command group for a
// chainfire-client command line: cluster commands when one of the words is a
// cluster command's name (member-list, status, ...), kv commands otherwise.
func chainfireClientCommand(args []string) []string {
	for _, a := range args {
		for _, c := range clusterCommand().Subcommands {
			if c.HasName(a) {
				return []string{"cluster"}
			}
		}
	}
	return []string{"kv"}
}

// ldbCommand maps the runbook's `rocksdb_ldb --db=DIR checkconsistency` and
// `rocksdb_ldb --db=DIR repair` to centra debug; anything else is passed to
// debug so that its help explains what exists.
func ldbCommand(args []string) []string {
	out := []string{"centra", "debug"}
	var rest []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case strings.HasPrefix(a, "--db="):
			rest = append(rest, "--data-dir", strings.TrimPrefix(a, "--db="))
		case a == "--db" && i+1 < len(args):
			rest = append(rest, "--data-dir", args[i+1])
			i++
		case a == "checkconsistency":
			out = append(out, "check")
		case a == "repair":
			out = append(out, "repair")
			rest = append(rest, "--yes")
		default:
			rest = append(rest, a)
		}
	}
	return append(out, rest...)
}
