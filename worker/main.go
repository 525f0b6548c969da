// Command worker runs Stagecraft's workflows and activities on the
// "stagecraft" task queue.
//
//	TEMPORAL_ADDRESS    Temporal frontend (default 127.0.0.1:7233)
//	TEMPORAL_NAMESPACE  namespace (default "default")
//	DOCKER_HOST         Docker engine (default the local socket)
//	DATABASE_URL        PostgreSQL for the audit trail (unset: the trail is off)
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/logging"
	"github.com/stagecraft/stagecraft/internal/platform/docker"
	"github.com/stagecraft/stagecraft/internal/platform/kubernetes"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/internal/store"
	"github.com/stagecraft/stagecraft/workflows"
)

type config struct {
	address, namespace, logLevel string
	console                      bool
	maxActivities                int
	allowCommands                []string
	databaseURL                  string
	skipMigrations               bool
}

func main() {
	var cfg config
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run Stagecraft's rollout workflows and activities",
		Example: `  # against the local dev server started by make run
  worker --address 127.0.0.1:7233`,
		SilenceUsage: true,
		RunE:         func(*cobra.Command, []string) error { return run(cfg) },
	}
	f := cmd.Flags()
	f.StringVar(&cfg.address, "address", envOr("TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port (env TEMPORAL_ADDRESS)")
	f.StringVar(&cfg.namespace, "namespace", envOr("TEMPORAL_NAMESPACE", "default"), "Temporal namespace (env TEMPORAL_NAMESPACE)")
	f.StringVar(&cfg.logLevel, "log-level", envOr("STAGECRAFT_LOG_LEVEL", "info"), "debug, info, warn or error")
	f.BoolVar(&cfg.console, "log-console", os.Getenv("STAGECRAFT_LOG_CONSOLE") != "", "human-readable logs instead of JSON")
	// Each rollout in a bake holds one watcher activity, so this bounds how
	// many rollouts one worker can hold at once.
	f.IntVar(&cfg.maxActivities, "max-concurrent-activities", 200, "activity slots (one per baking rollout, plus converges)")
	// Command checks run executables on this host: none unless listed.
	f.StringSliceVar(&cfg.allowCommands, "allow-command", splitList(os.Getenv("STAGECRAFT_ALLOW_COMMANDS")),
		"absolute path of an executable command health checks may run; repeat or comma-separate (env STAGECRAFT_ALLOW_COMMANDS). Without it, specs with command checks are rejected")
	f.StringVar(&cfg.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL for the audit trail, TLS settings included (env DATABASE_URL); unset, the trail is off")
	f.BoolVar(&cfg.skipMigrations, "skip-migrations", false, "do not apply the audit store's migrations at start")
	cmd.AddCommand(&cobra.Command{
		Use:          "migrate",
		Short:        "Apply the audit store's migrations to DATABASE_URL and exit",
		SilenceUsage: true,
		RunE: func(c *cobra.Command, _ []string) error {
			if cfg.databaseURL == "" {
				return errors.New("migrate: set DATABASE_URL or --database-url")
			}
			applied, err := store.Migrate(c.Context(), cfg.databaseURL)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "audit store migrated: %d migration(s) applied %v\n", len(applied), applied)
			return nil
		},
	})
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}

// openStore connects the audit store, applying migrations unless told not
// to. Without a URL the worker runs and says the trail is off.
func openStore(ctx context.Context, cfg config, log *zap.Logger) (*store.Store, error) {
	if cfg.databaseURL == "" {
		log.Warn("DATABASE_URL is not set: the audit trail is OFF (rollouts run, but nothing is written to PostgreSQL)")
		return nil, nil
	}
	if !cfg.skipMigrations {
		applied, err := store.Migrate(ctx, cfg.databaseURL)
		if err != nil {
			return nil, fmt.Errorf("audit store migrations: %w", err)
		}
		log.Info("audit store migrated", zap.Int("applied", len(applied)))
	}
	st, err := store.Open(ctx, cfg.databaseURL)
	if err != nil {
		return nil, fmt.Errorf("audit store: %w", err)
	}
	log.Info("audit trail on (PostgreSQL)")
	return st, nil
}

func run(cfg config) error {
	log, err := logging.New(cfg.logLevel, cfg.console)
	if err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	defer func() { _ = log.Sync() }()

	if err := checkAllowlist(cfg.allowCommands); err != nil {
		return err
	}
	st, err := openStore(context.Background(), cfg, log)
	if err != nil {
		return err
	}
	var auditStore activities.Store
	if st != nil {
		defer st.Close()
		auditStore = st
	}
	c, err := tclient.Dial(tclient.Options{HostPort: cfg.address, Namespace: cfg.namespace, Logger: logging.Temporal(log)})
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", cfg.address, err)
	}
	defer c.Close()

	dc, err := client.New(client.FromEnv)
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer dc.Close()

	w := worker.New(c, workflows.TaskQueue, worker.Options{MaxConcurrentActivityExecutionSize: cfg.maxActivities})
	workflows.Register(w)
	w.RegisterActivity(&activities.Activities{
		Platforms: map[string]activities.Platform{
			spec.PlatformDocker:     docker.New(dc, log),
			spec.PlatformKubernetes: kubernetes.New(log),
		},
		Checker: &health.Checker{Commands: cfg.allowCommands},
		Store:   auditStore,
		Log:     log,
	})
	log.Info("worker starting", zap.String("address", cfg.address), zap.String("namespace", cfg.namespace),
		zap.String("taskQueue", workflows.TaskQueue), zap.Strings("allowedCommands", cfg.allowCommands))
	return w.Run(worker.InterruptCh())
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkAllowlist refuses entries that are not absolute paths to executable
// files, so a typo is found at start-up, not at a rollout.
func checkAllowlist(paths []string) error {
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("--allow-command %q: must be an absolute path", p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("--allow-command %q: %w", p, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("--allow-command %q: not an executable file", p)
		}
	}
	return nil
}
