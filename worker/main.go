// Command worker runs Stagecraft's workflows and activities on the
// "stagecraft" task queue.
//
//	TEMPORAL_ADDRESS    Temporal frontend (default 127.0.0.1:7233)
//	TEMPORAL_NAMESPACE  namespace (default "default")
//	TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_*  TLS, mTLS and API key, as the temporal CLI reads them
//	DOCKER_HOST         Docker engine (default the local socket)
//	DATABASE_URL        PostgreSQL for the audit trail (unset: the trail is off)
//	STAGECRAFT_METRICS_ADDRESS  host:port of the Prometheus /metrics endpoint (unset: off)
//	STAGECRAFT_STOP_TIMEOUT     how long running activities may finish after SIGTERM (default 50s)
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/conn"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/egress"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/logging"
	"github.com/stagecraft/stagecraft/internal/notify"
	"github.com/stagecraft/stagecraft/internal/platform/docker"
	"github.com/stagecraft/stagecraft/internal/platform/kubernetes"
	"github.com/stagecraft/stagecraft/internal/secrets"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/internal/store"
	"github.com/stagecraft/stagecraft/workflows"
)

type config struct {
	temporal       conn.Temporal
	logLevel       string
	console        bool
	maxActivities  int
	allowCommands  []string
	egressAllow    []string
	secretPrefixes []string
	secretDirs     []string
	databaseURL    string
	skipMigrations bool
	stickyTimeout  time.Duration
	kubeQPS        float32
	kubeBurst      int
	kubeCheckVia   string
	clusters       []string
	kubePaths      bool
	metricsAddress string
	stopTimeout    time.Duration
	signingKeys    []string
}

// defaultStopTimeout is how long, after SIGTERM, the worker lets running
// activities finish (a converge its change, a rollback its restore) before
// it cancels them. The platform's grace period must be longer
// (terminationGracePeriodSeconds 60, stop_grace_period 60s).
const defaultStopTimeout = 50 * time.Second

func main() {
	var cfg config
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run Stagecraft's rollout workflows and activities",
		Example: `  # against the local dev server started by make run
  worker --address 127.0.0.1:7233`,
		SilenceUsage: true,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := stopTimeoutFromEnv(c.Flags(), &cfg.stopTimeout); err != nil {
				return err
			}
			return run(cfg)
		},
	}
	f := cmd.Flags()
	cfg.temporal.AddFlags(f)
	f.StringVar(&cfg.logLevel, "log-level", envOr("STAGECRAFT_LOG_LEVEL", "info"), "debug, info, warn or error")
	f.BoolVar(&cfg.console, "log-console", os.Getenv("STAGECRAFT_LOG_CONSOLE") != "", "human-readable logs instead of JSON")
	// Each rollout in a bake holds one watcher activity, so this bounds how
	// many rollouts one worker can hold at once.
	f.IntVar(&cfg.maxActivities, "max-concurrent-activities", 200, "activity slots (one per baking rollout, plus converges)")
	// Command checks run executables on this host: none unless listed.
	f.StringSliceVar(&cfg.allowCommands, "allow-command", splitList(os.Getenv("STAGECRAFT_ALLOW_COMMANDS")),
		"absolute path of an executable command health checks may run; repeat or comma-separate (env STAGECRAFT_ALLOW_COMMANDS). Without it, specs with command checks are rejected")
	f.StringSliceVar(&cfg.secretPrefixes, "secret-env-prefix", splitList(os.Getenv("STAGECRAFT_SECRET_ENV_PREFIXES")),
		"prefix of the worker's environment variables specs may reference ({fromEnv: APP_DB_PASSWORD}); repeat or comma-separate (env STAGECRAFT_SECRET_ENV_PREFIXES). Without it specs may reference none; the worker's own settings (TEMPORAL_*, DATABASE_URL, PG*, DOCKER_*, KUBECONFIG, cloud credentials, its keys) never")
	f.StringSliceVar(&cfg.secretDirs, "secret-dir", splitList(os.Getenv("STAGECRAFT_SECRET_DIRS")),
		"directory whose files specs may reference ({fromFile: /run/secrets/app/db}), symbolic links resolved; repeat or comma-separate (env STAGECRAFT_SECRET_DIRS). Without it specs may reference none; /proc, /sys, /dev, service-account tokens and the worker's own key files never")
	f.StringSliceVar(&cfg.egressAllow, "egress-allow", splitList(os.Getenv("STAGECRAFT_EGRESS_ALLOW")),
		"host name (*.example.com for subdomains), IP address or CIDR that fixed-target checks, Prometheus URLs, webhooks and Slack may reach; repeat or comma-separate (env STAGECRAFT_EGRESS_ALLOW). Without it every address but link-local and cloud metadata is reachable; with it only those listed (loopback, link-local and metadata only when a CIDR inside their range is listed)")
	cmd.PersistentFlags().StringVar(&cfg.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL for the audit trail, TLS settings included (env DATABASE_URL); unset, the trail is off")
	// After a worker dies, a run's next workflow task waits this long on the
	// dead worker's sticky queue before any worker may take it: it bounds
	// how late a bake's end (a durable timer) takes effect. The SDK's
	// default is 5 s.
	f.DurationVar(&cfg.stickyTimeout, "sticky-schedule-to-start-timeout", time.Second,
		"how long a workflow task waits for the worker that has its run cached before another worker takes it (after a crash, how late a bake's end can act)")
	f.Float32Var(&cfg.kubeQPS, "kube-qps", kubernetes.DefaultQPS, "requests per second to each Kubernetes cluster (one client per kubeconfig and context, shared by its rollouts)")
	f.IntVar(&cfg.kubeBurst, "kube-burst", kubernetes.DefaultBurst, "burst of requests to each Kubernetes cluster")
	f.StringSliceVar(&cfg.clusters, "cluster", splitList(os.Getenv("STAGECRAFT_CLUSTERS")),
		"a Kubernetes cluster specs may name (platform.kubernetes.cluster), as NAME=KUBECONFIG[:CONTEXT]; repeat or comma-separate (env STAGECRAFT_CLUSTERS). A spec without a cluster uses the worker's default ($KUBECONFIG or the cluster it runs in)")
	f.BoolVar(&cfg.kubePaths, "allow-kubeconfig-paths", os.Getenv("STAGECRAFT_ALLOW_KUBECONFIG_PATHS") != "",
		"let specs name a kubeconfig path and context of their own (local development only: a spec author then chooses the worker's credentials; env STAGECRAFT_ALLOW_KUBECONFIG_PATHS)")
	f.StringVar(&cfg.kubeCheckVia, "kube-check-via", kubernetes.CheckViaAuto,
		"how checks on each pod ({{.Address}}) reach it: podIP (the pod's IP, from inside the cluster network), portForward (a 127.0.0.1 port forwarded through the API server; needs create on pods/portforward) or auto (podIP when the worker runs in the cluster, portForward otherwise)")
	f.DurationVar(&cfg.stopTimeout, "stop-timeout", defaultStopTimeout,
		"after SIGTERM, how long running activities may finish before they are cancelled (env STAGECRAFT_STOP_TIMEOUT); keep it below the platform's grace period")
	f.StringSliceVar(&cfg.signingKeys, "webhook-signing-key-file", splitList(os.Getenv("STAGECRAFT_WEBHOOK_SIGNING_KEY_FILES")),
		"file holding a secret (at least 32 bytes) that signs every webhook delivery (X-Stagecraft-Signature); repeat for a rotation: each key signs, receivers accept any they know (env STAGECRAFT_WEBHOOK_SIGNING_KEY_FILES, comma-separated). Without it, deliveries are unsigned")
	f.BoolVar(&cfg.skipMigrations, "skip-migrations", false, "do not apply the audit store's migrations at start")
	f.StringVar(&cfg.metricsAddress, "metrics-address", os.Getenv("STAGECRAFT_METRICS_ADDRESS"), "host:port to serve Prometheus metrics on at /metrics, e.g. 127.0.0.1:9464 (env STAGECRAFT_METRICS_ADDRESS); empty, the default, serves none")
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
	cmd.AddCommand(replayCmd())
	cmd.AddCommand(codecServerCmd())
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
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
	keys, err := notify.ReadSigningKeys(cfg.signingKeys)
	if err != nil {
		return err
	}
	// What specs may read on this worker (review finding 5): the files the
	// worker itself reads are refused even inside an allowed directory.
	scope := secrets.Scope{EnvPrefixes: cfg.secretPrefixes, Dirs: cfg.secretDirs,
		DenyFiles: workerFiles(cfg)}
	if err := secrets.ValidateScope(scope); err != nil {
		return err
	}
	resolver := scope.Resolver()
	egressPolicy, err := egress.Parse(cfg.egressAllow)
	if err != nil {
		return fmt.Errorf("--egress-allow: %w", err)
	}
	if egressPolicy.Open() {
		log.Warn("no --egress-allow: checks, webhooks and Slack URLs named in specs may reach any address of this worker's networks but link-local and cloud metadata (loopback and private ranges included)")
	}
	if len(keys) == 0 {
		log.Warn("no --webhook-signing-key-file: webhook deliveries are unsigned, so receivers cannot tell them from forgeries")
	}
	metricsHandler, stopMetrics, err := serveMetrics(cfg.metricsAddress, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	var trail activities.Store
	if cfg.databaseURL == "" {
		log.Warn("DATABASE_URL is not set: the audit trail is OFF (rollouts run, but nothing is written to PostgreSQL)")
	} else {
		// Connected before the worker polls when the database is up;
		// otherwise in the background.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		as := store.OpenLazy(ctx, cfg.databaseURL, cfg.skipMigrations, log)
		defer as.Close()
		trail = as
	}
	opts, err := cfg.temporal.Options()
	if err != nil {
		return err
	}
	opts.Logger = logging.Temporal(log)
	opts.MetricsHandler = metricsHandler
	c, err := tclient.Dial(opts)
	if err != nil {
		return conn.DialError(opts, err)
	}
	defer c.Close()
	log.Info("connected to Temporal", zap.String("connection", conn.Describe(opts)))
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	added, err := control.EnsureSearchAttributes(sctx, c, opts.Namespace)
	cancel()
	if err != nil {
		return err
	}
	if len(added) > 0 {
		log.Info("registered search attributes", zap.Strings("names", added), zap.String("namespace", opts.Namespace))
	}

	dc, err := client.New(client.FromEnv)
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer dc.Close()

	workflows.SetDataConverter(opts.DataConverter)
	w := worker.New(c, api.TaskQueue, workerOptions(cfg, log))
	workflows.Register(w)
	kube := kubernetes.New(log)
	kube.QPS, kube.Burst = cfg.kubeQPS, cfg.kubeBurst
	if kube.Clusters, err = parseClusters(cfg.clusters); err != nil {
		return err
	}
	kube.SpecPaths = cfg.kubePaths
	if kube.CheckVia, err = kubernetes.ParseCheckVia(cfg.kubeCheckVia); err != nil {
		return err
	}
	defer kube.Close()
	dockerPlatform := docker.New(dc, log)
	dockerPlatform.Secrets = resolver
	w.RegisterActivity(&activities.Activities{
		Platforms: map[string]activities.Platform{
			spec.PlatformDocker:     dockerPlatform,
			spec.PlatformKubernetes: kube,
		},
		Checker:  &health.Checker{Commands: cfg.allowCommands, Egress: egressPolicy, Secrets: resolver},
		Store:    trail,
		Notifier: &notify.Sender{SigningKeys: keys, Egress: egressPolicy, Secrets: resolver},
		// Side heartbeats that see the server's answers: a converge whose
		// attempt the server has given up on stops (review finding 17).
		Server: c,
		Log:    log,
	})
	log.Info("worker starting", zap.String("address", opts.HostPort), zap.String("namespace", opts.Namespace),
		zap.String("taskQueue", api.TaskQueue), zap.Strings("allowedCommands", cfg.allowCommands))
	return w.Run(worker.InterruptCh())
}

// workerOptions are the SDK worker's options from the configuration.
func workerOptions(cfg config, log *zap.Logger) worker.Options {
	return worker.Options{
		MaxConcurrentActivityExecutionSize: cfg.maxActivities,
		StickyScheduleToStartTimeout:       cfg.stickyTimeout,
		// Without it the SDK cancels running activities at once on SIGTERM:
		// a converge is cut off mid-change and retried elsewhere only after
		// its heartbeat timeout.
		WorkerStopTimeout: cfg.stopTimeout,
		Interceptors:      failpoints(log),
	}
}

// stopTimeoutFromEnv sets *d from STAGECRAFT_STOP_TIMEOUT unless the flag
// was given; a value that is no duration stops the worker at start.
func stopTimeoutFromEnv(flags *pflag.FlagSet, d *time.Duration) error {
	v := os.Getenv("STAGECRAFT_STOP_TIMEOUT")
	if v == "" || flags.Changed("stop-timeout") {
		return nil
	}
	parsed, err := time.ParseDuration(v)
	if err != nil || parsed < 0 {
		return fmt.Errorf("STAGECRAFT_STOP_TIMEOUT %q: not a duration like 50s", v)
	}
	*d = parsed
	return nil
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
