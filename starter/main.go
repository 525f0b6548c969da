// Command starter starts, follows and steers Stagecraft rollouts and
// releases.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/conn"
	"github.com/stagecraft/stagecraft/internal/control"
)

type globals struct {
	temporal         conn.Temporal
	namespace, uiURL string
	databaseURL      string
	jsonOut          bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the CLI with args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return runRoot(newRoot(&globals{}), args, stdout, stderr)
}

// runRoot runs root with args. Everything printed goes through a
// safeWriter: text from others (a reason, a check's error) cannot command
// the operator's terminal.
func runRoot(root *cobra.Command, args []string, stdout, stderr io.Writer) int {
	out, errOut := &safeWriter{w: stdout}, &safeWriter{w: stderr}
	defer func() { _ = out.Flush(); _ = errOut.Flush() }()
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(errOut)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(errOut, "error:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

const idsHelp = `IDs: a rollout's workflow ID is derived from its target (deploy:docker:SERVICE,
deploy:k8s:[CLUSTER/]NAMESPACE/DEPLOYMENT), a release's from its environment and name
(release:ENVIRONMENT/NAME); a rollout is also found by the --execution-id it was started with
(refused, listing them, when that ID names several open rollouts).`

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "starter",
		Short: "Start, follow and steer Stagecraft rollouts and releases",
		Long: "Start, follow and steer Stagecraft rollouts and releases on Temporal.\n\n" +
			idsHelp + "\n\n" + exitCodesHelp,
		Example: `  starter deploy -f deployments/examples/canary.yaml --wait
  starter watch deploy:docker:hello
  starter status deploy:docker:hello --json
  starter pause deploy:docker:hello --reason "checking dashboards"
  starter approve deploy:docker:hello --reason "error rate flat at 50%"
  starter abort deploy:docker:hello --reason "error rate up" --by alice
  starter revisions hello
  starter undo hello --to 3 --reason "v5 leaks memory"`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	// Checked here, before cobra does, so a missing flag is invalid input.
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := cmd.ValidateRequiredFlags(); err != nil {
			return &exitError{exitInvalid, fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())}
		}
		return nil
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &exitError{exitInvalid, fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())}
	})
	pf := root.PersistentFlags()
	g.temporal.AddFlags(pf)
	pf.StringVar(&g.uiURL, "ui", envOr("TEMPORAL_UI", "http://127.0.0.1:8233"), "Temporal Web UI base URL, for links (env TEMPORAL_UI)")
	pf.BoolVar(&g.jsonOut, "json", false, "print JSON (watch: one status object per line, whenever it changed)")
	pf.StringVar(&g.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL of the audit trail, for history and list (env DATABASE_URL)")

	root.AddCommand(deployCmd(g), planCmd(g), validateCmd(g), statusCmd(g), watchCmd(g), historyCmd(g), listCmd(g), releaseCmd(g), clearCmd(g),
		revisionsCmd(g), undoCmd(g))
	for _, action := range []string{api.UpdatePause, api.UpdateResume, api.UpdateAbort, api.UpdatePromote, api.UpdateApprove} {
		root.AddCommand(controlCmd(g, action))
	}
	return root
}

// exactArgs is cobra.ExactArgs whose refusal is invalid input (exit 2).
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &exitError{exitInvalid, fmt.Errorf("%s takes %d argument(s), got %d (usage: %s; see %s --help)",
				cmd.CommandPath(), n, len(args), strings.TrimSuffix(cmd.UseLine(), " [flags]"), cmd.CommandPath())}
		}
		return nil
	}
}

func (g *globals) dial() (client.Client, error) {
	opts, err := g.temporal.Options()
	if err != nil {
		return nil, &exitError{exitInvalid, err}
	}
	opts.Logger = log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	// Temporal records the caller's identity on every start, signal and
	// update it sends, beside the --by the control log keeps.
	opts.Identity = "stagecraft-starter " + defaultIdentity()
	c, err := client.Dial(opts)
	if err != nil {
		return nil, conn.DialError(opts, err)
	}
	g.namespace = opts.Namespace
	return control.WithDataConverter(c, opts.DataConverter), nil
}

// connect dials Temporal for a command that waits on a rollout or release,
// with a context that Ctrl-C cancels (the command then says how to go on
// watching); done closes both.
func (g *globals) connect(cmd *cobra.Command) (c client.Client, ctx context.Context, done func(), err error) {
	if c, err = g.dial(); err != nil {
		return nil, nil, nil, err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
	return c, ctx, func() { stop(); c.Close() }, nil
}

func (g *globals) link(workflowID, runID string) string {
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history", strings.TrimRight(g.uiURL, "/"), g.namespace, workflowID, runID)
}

func defaultIdentity() string {
	host, _ := os.Hostname()
	user := os.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	return user + "@" + host
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
