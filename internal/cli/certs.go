package cli

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	centratls "github.com/centra-cloud/centra/shared/tls"
)

func certsCommand() *cli.Command {
	return &cli.Command{
		Name:  "certs",
		Usage: "manage TLS certificates",
		Subcommands: []*cli.Command{{
			Name:  "init",
			Usage: "write a CA (or reuse the one in --dir) and a certificate per node, usable for both the API and raft",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "dir", Required: true, Usage: "directory to write ca.crt, ca.key, NAME.crt, NAME.key, client.crt, client.key"},
				&cli.StringSliceFlag{Name: "node", Required: true, Usage: "NAME=IP[,IP|DNS...]: a node certificate and its addresses (repeatable)"},
				&cli.DurationFlag{Name: "validity", Value: 365 * 24 * time.Hour, Usage: "how long the node certificates are valid"},
			},
			Action: func(c *cli.Context) error {
				var nodes []centratls.NodeSpec
				for _, s := range c.StringSlice("node") {
					n, err := centratls.ParseNodeSpec(s)
					if err != nil {
						return err
					}
					nodes = append(nodes, n)
				}
				files, err := centratls.Generate(c.String("dir"), nodes, c.Duration("validity"))
				if err != nil {
					return err
				}
				for _, f := range files {
					fmt.Fprintln(stdoutOf(c), "wrote", f)
				}
				return nil
			},
		}},
	}
}

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "inspect configuration",
		Subcommands: []*cli.Command{{
			Name:  "check",
			Usage: "load and validate the configuration (file < CENTRA_* env < flags) and print the effective config, or every error",
			Flags: configFlags(),
			Action: func(c *cli.Context) error {
				cfg, err := loadConfig(c)
				if err != nil {
					return err
				}
				if err := cfg.Validate(); err != nil {
					return err
				}
				out, err := cfg.TOML()
				if err != nil {
					return err
				}
				// The role first: it decides what the node runs, and it
				// may have been inferred from the file's shape.
				w := stdoutOf(c)
				if _, err := fmt.Fprintf(w, "# node.role = %q (set by %s)\n", cfg.Node.Role, cfg.Source("node.role")); err != nil {
					return err
				}
				_, err = w.Write(out)
				return err
			},
		}},
	}
}
