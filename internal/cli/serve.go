package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/centra-cloud/centra/config"
	"github.com/centra-cloud/centra/internal/app"
	"github.com/centra-cloud/centra/internal/sdnotify"
)

// configFlags are --config plus one flag per config key (config.Keys), so a
// key, its flag and its CENTRA_* variable are the same setting.
func configFlags() []cli.Flag {
	flags := []cli.Flag{&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "TOML config file (chainfire.toml or flaredb.toml layout)", EnvVars: []string{config.EnvConfigFile}}}
	for _, k := range config.Keys() {
		var aliases []string
		if k.Name == "node.role" {
			aliases = []string{"role"}
		}
		usage := k.Help + " [" + k.Name + "]"
		if k.Kind == config.KindBool {
			flags = append(flags, &cli.BoolFlag{Name: k.Flag, Aliases: aliases, Usage: usage, DefaultText: k.Default})
			continue
		}
		flags = append(flags, &cli.StringFlag{Name: k.Flag, Aliases: aliases, Usage: usage, DefaultText: k.Default})
	}
	return flags
}

// loadConfig builds the effective config: defaults < file < env < flags.
func loadConfig(c *cli.Context) (config.Config, error) {
	set := map[string]any{}
	for _, k := range config.Keys() {
		switch {
		case !c.IsSet(k.Flag):
		case k.Kind == config.KindBool:
			set[k.Name] = c.Bool(k.Flag)
		default:
			set[k.Name] = c.String(k.Flag)
		}
	}
	return config.Load(config.LoadOptions{File: c.String("config"), Env: os.Environ(), Flags: set})
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run a centra node (with no config: a single-node dev cluster in ./centra-data on 127.0.0.1:2379)",
		Flags: append(configFlags(), &cli.BoolFlag{
			Name:  "force-new-cluster",
			Usage: "recovery after a quorum was lost for good: make this node the only member, keeping its data (run once, on the member with the highest raft_index; then member-add the others with wiped data and bootstrap = false)",
		}),
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			level, err := app.ParseLevel(cfg.LogLevel)
			if err != nil {
				return err
			}
			log := app.NewLogger(os.Stderr, level, cfg.LogFormat)
			if env, ok := withServerGODEBUG(os.Environ()); ok {
				// Returns only if the exec failed.
				err := syscall.Exec("/proc/self/exe", os.Args, env)
				log.Warn("Could not restart with "+stackShrinkOff+" in GODEBUG; goroutine stacks shrink as by default", "err", err)
			}
			setServerGC()
			a, err := app.New(cfg, app.Options{ForceNewCluster: c.Bool("force-new-cluster"), Version: Version}, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := a.Start(ctx); err != nil {
				if ctx.Err() != nil {
					log.Info("Shutting down before the node started")
					notifyStopping(log)
					return nil
				}
				return err
			}
			if c.String("config") == "" {
				fmt.Fprintf(stdoutOf(c), "centra is running (node %d, data in %s).\nTalk to it with:\n  centra kv put foo bar --endpoint %s\n  centra kv get foo --endpoint %s\n  etcdctl --endpoints=%s get foo\nStop it with Ctrl-C.\n",
					cfg.Node.ID, cfg.EffectiveDataDir(), a.APIAddr(), a.APIAddr(), a.APIAddr())
			}
			select {
			case <-ctx.Done():
				log.Info("Shutting down")
				notifyStopping(log)
				return a.Close()
			case err := <-a.Failed():
				log.Error("Stopping", "err", err)
				notifyStopping(log)
				_ = a.Close()
				return err
			}
		},
	}
}

// notifyStopping tells systemd (Type=notify units) that shutdown began.
func notifyStopping(log *slog.Logger) {
	if err := sdnotify.Stopping(); err != nil {
		log.Warn("Could not notify systemd", "err", err)
	}
}

// serverGCPercent is the GC target of a serving node unless GOGC is set: the
// request path allocates a few KiB per request while the live heap stays
// small, so Go's default (100) spent 4-7% of the leader's CPU in GC under
// etcd's benchmark; 200 halves the collections for a heap at most about
// twice as large (docs/performance.md).
const serverGCPercent = 200

func setServerGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serverGCPercent)
	}
}

// stackShrinkOff keeps the GC from shrinking goroutine stacks. An idle
// grpc-go stream worker is blocked at a shallow depth, so every GC cycle
// halved its stack and the next call grew it again through the request
// path: runtime.copystack was 3-20% of the leader's CPU under etcd's
// benchmark with 100 and 1000 clients (docs/performance.md, section 8).
// Without shrinking, a goroutine keeps the largest stack it needed until it
// exits; the request path's goroutines need a few tens of KiB.
const stackShrinkOff = "gcshrinkstackoff=1"

// withServerGODEBUG returns env with stackShrinkOff added to GODEBUG, and
// true, unless GODEBUG already sets gcshrinkstackoff (either way: the
// operator decided). The runtime reads the setting only when the process
// starts, and //go:debug does not accept it, so serve execs itself with it.
func withServerGODEBUG(env []string) ([]string, bool) {
	name, _, _ := strings.Cut(stackShrinkOff, "=")
	for i, kv := range env {
		v, ok := strings.CutPrefix(kv, "GODEBUG=")
		if !ok {
			continue
		}
		for _, setting := range strings.Split(v, ",") {
			if k, _, _ := strings.Cut(setting, "="); strings.TrimSpace(k) == name {
				return env, false
			}
		}
		out := slices.Clone(env)
		if v == "" {
			out[i] = "GODEBUG=" + stackShrinkOff
		} else {
			out[i] = kv + "," + stackShrinkOff
		}
		return out, true
	}
	return append(slices.Clone(env), "GODEBUG="+stackShrinkOff), true
}
