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
	args = multiCall(args)
	if err := NewApp(stdout, stderr).Run(args); err != nil {
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
