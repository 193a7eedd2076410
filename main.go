// Command centra is one binary for the whole control plane store: the
// Chainfire etcd-compatible KV, the placement driver and FlareDB. Invoked as
// chainfire-server, chainfire-client, flaredb-server or flaredb-client (a
// symlink or copy), it accepts the runbooks' command lines.
package main

import (
	"os"

	"github.com/centra-cloud/centra/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args, os.Stdout, os.Stderr))
}
