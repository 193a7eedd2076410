package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
)

// multiCallNames are the runbooks' program names centra answers to.
var multiCallNames = []string{"chainfire-server", "chainfire-client", "flaredb-server", "flaredb-client", "rocksdb_ldb"}

func installLinksCommand() *cli.Command {
	return &cli.Command{
		Name:      "install-links",
		Usage:     "create the runbooks' program names (chainfire-server, chainfire-client, flaredb-server, flaredb-client, rocksdb_ldb) as symlinks to this binary in DIR",
		ArgsUsage: "DIR",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf("install-links: want one directory, got %d arguments", c.NArg())
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			if self, err = filepath.EvalSymlinks(self); err != nil {
				return err
			}
			dir := c.Args().First()
			for _, name := range multiCallNames {
				link := filepath.Join(dir, name)
				if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
					return fmt.Errorf("install-links: replace %s: %w", link, err)
				}
				if err := os.Symlink(self, link); err != nil {
					return fmt.Errorf("install-links: %w", err)
				}
				fmt.Fprintf(stdoutOf(c), "%s -> %s\n", link, self)
			}
			return nil
		},
	}
}
