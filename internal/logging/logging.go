// Package logging builds Stagecraft's zap loggers and adapts them to the
// Temporal SDK's logger interface.
package logging

import (
	"os"

	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a production zap logger at the given level ("debug", "info",
// "warn", "error"); with console=true it prints human-readable lines.
func New(level string, console bool) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	cfg := zap.NewProductionConfig()
	if console {
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.OutputPaths = []string{"stderr"}
	if os.Getenv("STAGECRAFT_LOG_FILE") != "" {
		cfg.OutputPaths = []string{os.Getenv("STAGECRAFT_LOG_FILE")}
	}
	return cfg.Build()
}

// Temporal adapts z to the SDK's key-value logger.
func Temporal(z *zap.Logger) log.Logger {
	return temporalLogger{z.WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

type temporalLogger struct{ s *zap.SugaredLogger }

func (l temporalLogger) Debug(msg string, kv ...any) { l.s.Debugw(msg, kv...) }
func (l temporalLogger) Info(msg string, kv ...any)  { l.s.Infow(msg, kv...) }
func (l temporalLogger) Warn(msg string, kv ...any)  { l.s.Warnw(msg, kv...) }
func (l temporalLogger) Error(msg string, kv ...any) { l.s.Errorw(msg, kv...) }

// With returns a logger with the key-values always attached.
func (l temporalLogger) With(kv ...any) log.Logger { return temporalLogger{l.s.With(kv...)} }
