// Package cli is centra's command line: one urfave/cli app whose command
// groups each live in their own file.
package cli

import (
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
			certsCommand(),
			configCommand(),
			versionCommand(),
		},
		// Errors are printed once, on one line, by Run.
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: true,
	}
}

// Run runs the CLI with args (args[0] is the program name) and returns the
// process exit code. Errors are printed as one line on stderr.
func Run(args []string, stdout, stderr io.Writer) int {
	app := NewApp(stdout, stderr)
	if err := app.Run(interleaveFlags(app, multiCall(args))); err != nil {
		fmt.Fprintf(stderr, "Error: %s\n", strings.TrimSpace(err.Error()))
		return 1
	}
	return 0
}

// multiCall rewrites the command line when centra runs under one of the
// runbooks' program names (through a symlink or a copy):
// chainfire-server/flaredb-server ARGS = centra serve ARGS,
// chainfire-client ARGS = centra kv ARGS.
func multiCall(args []string) []string {
	if len(args) == 0 {
		return args
	}
	var sub []string
	switch filepath.Base(args[0]) {
	case "chainfire-server", "flaredb-server":
		sub = []string{"serve"}
	case "chainfire-client":
		sub = []string{"kv"}
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

// interleaveFlags lets flags follow positional arguments, as etcdctl allows
// (`centra kv put foo bar --endpoint X`): urfave/cli stops parsing flags at
// the first positional argument, so the leaf command's flags found after
// one are moved in front of it.
func interleaveFlags(app *cli.App, args []string) []string {
	cmds, i := app.Commands, 1
	var leaf *cli.Command
	for ; i < len(args); i++ {
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(args[i]) {
				next = c
			}
		}
		if next == nil {
			break
		}
		leaf, cmds = next, next.Subcommands
	}
	if leaf == nil || len(leaf.Subcommands) > 0 {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range leaf.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, positional []string
	rest := args[i:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			positional = append(positional, rest[j+1:]...)
			break
		}
		name := strings.TrimLeft(a, "-")
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		if eq := strings.IndexByte(name, '='); eq < 0 && takesValue[name] && j+1 < len(rest) {
			flags = append(flags, rest[j+1])
			j++
		}
	}
	out := append(append([]string{}, args[:i]...), flags...)
	if len(positional) > 0 {
		out = append(append(out, "--"), positional...)
	}
	return out
}
