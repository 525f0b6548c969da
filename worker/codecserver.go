package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagecraft/stagecraft/internal/codec"
)

// codecServerCmd serves the payload codec over Temporal's remote codec
// protocol, so the Web UI and the temporal CLI show sealed payloads to
// whoever holds its token.
func codecServerCmd() *cobra.Command {
	var keyFile, tokenFile, listen string
	var origins []string
	cmd := &cobra.Command{
		Use:   "codec-server",
		Short: "Serve the payload codec for the Temporal Web UI and CLI (remote codec protocol)",
		Long: `codec-server opens payloads sealed with the worker's codec keys for the Temporal Web UI
(temporal server start-dev --ui-codec-endpoint URL, or the UI's codec setting) and the temporal
CLI (--codec-endpoint URL --codec-auth "Bearer TOKEN"). With --auth-token-file, only requests
carrying that token in their Authorization header are answered; listen on a loopback or
otherwise private address.`,
		Example: `  worker codec-server --codec-key-file /etc/stagecraft/codec.keys \
    --auth-token-file /etc/stagecraft/codec.token --allow-origin http://127.0.0.1:8233
  temporal workflow show -w deploy:docker:hello \
    --codec-endpoint http://127.0.0.1:8089 --codec-auth "Bearer $(cat codec.token)"`,
		SilenceUsage: true,
		RunE: func(c *cobra.Command, _ []string) error {
			cd, err := codec.Load(keyFile)
			if err != nil {
				return err
			}
			if cd == nil {
				return fmt.Errorf("codec-server: no keys: set --codec-key-file, %s or %s", codec.EnvKeyFile, codec.EnvKeys)
			}
			opts := codec.ServerOptions{Origins: origins}
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("codec-server: %w", err)
				}
				token := strings.TrimSpace(string(b))
				if len(token) < 16 {
					return fmt.Errorf("codec-server: token in %s: %d characters, want at least 16", tokenFile, len(token))
				}
				opts.Token = "Bearer " + token
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("codec-server: %w", err)
			}
			auth := "no token: anyone who can reach it can read payloads"
			if opts.Token != "" {
				auth = "token required"
			}
			fmt.Fprintf(c.OutOrStdout(), "codec server on http://%s (key %s seals; %s)\n", ln.Addr(), cd.SealingKey(), auth)
			srv := &http.Server{Handler: codec.Handler(cd, opts), ReadHeaderTimeout: 10 * time.Second}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "codec-key-file", "", "the codec's keys, as the worker's --codec-key-file (env "+codec.EnvKeyFile+" or "+codec.EnvKeys+")")
	f.StringVar(&tokenFile, "auth-token-file", "", "file holding the token a request must carry as \"Authorization: Bearer TOKEN\" (at least 16 characters)")
	f.StringVar(&listen, "listen", "127.0.0.1:8089", "address to serve on")
	f.StringSliceVar(&origins, "allow-origin", nil, "browser origin allowed to call it (the Web UI's, e.g. http://127.0.0.1:8233); repeatable")
	return cmd
}
