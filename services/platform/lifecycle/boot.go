package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/config"
	"github.com/kubelab/kubelab/services/platform/devreload"
	"github.com/kubelab/kubelab/services/platform/telemetry"
)

// ExitConfig is the exit status of a process that cannot start with its
// configuration: no restart will help, so a Job's podFailurePolicy can
// fail at once on it.
const ExitConfig = 2

// Process is what every kubelab main starts from.
type Process struct {
	Info build.Info
	Log  *slog.Logger
}

// Boot does what every kubelab main does first: read the environment into
// cfg (a bad value exits with ExitConfig and a message naming the
// variable), make the JSON logger at the level *logLevel names once cfg is
// read and make it the process's default (telemetry.SetDefault), honour DEV_RELOAD_BINARY (Tilt's inner loop), and return a context
// that SIGTERM or SIGINT cancels.
func Boot(service string, cfg any, logLevel *string) (context.Context, context.CancelFunc, Process) {
	if err := config.LoadEnv(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", service, err)
		os.Exit(ExitConfig)
	}
	info := build.Current(service)
	log, err := telemetry.NewLogger(os.Stderr, *logLevel, "service", info.Service, "version", info.Version, "pod", info.Instance)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: config: LOG_LEVEL: %v\n", service, err)
		os.Exit(ExitConfig)
	}
	telemetry.SetDefault(log)
	if err := devreload.Setup(log); err != nil {
		log.Error("exiting", "err", err)
		os.Exit(ExitConfig)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	return ctx, stop, Process{Info: info, Log: log}
}
