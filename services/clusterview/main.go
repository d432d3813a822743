// Command clusterview feeds the frontend's live view (/cluster): it watches
// its pod's namespace, a list and then a watch per resource, and streams a
// snapshot of it, as server-sent events, whenever something changes.
//
// It runs as a sidecar in the frontend's pods (kustomize/components/live-view)
// and listens on localhost only: the frontend proxies /cluster/stream to it.
// It is a process of its own so that the ServiceAccount token that lets it
// read the namespace is mounted into its container alone: the
// internet-facing frontend holds no credentials for the API server.
//
// It talks to the API server through internal/kube, a few hundred lines
// that do for seven resources what client-go's informers do for all of
// them, rather than through client-go, which made this binary 31.6 MB
// instead of under 20 (docs/DESIGN.md has the figures).
//
// Without an API server it keeps serving, with the reason in every
// snapshot: the frontend's pod must never go unready because of it.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kubelab/kubelab/services/clusterview/internal/kube"
	"github.com/kubelab/kubelab/services/clusterview/internal/stream"
	"github.com/kubelab/kubelab/services/clusterview/internal/view"
	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/config"
	"github.com/kubelab/kubelab/services/platform/telemetry"
)

type settings struct {
	// HTTPAddr is on localhost: only the frontend, in the same pod, asks.
	HTTPAddr string `envconfig:"HTTP_ADDR" default:"127.0.0.1:8081"`
	// Namespace is the pod's own, from the Downward API: the Role lets
	// clusterview read that namespace and no other.
	Namespace string `envconfig:"POD_NAMESPACE"`
	// LiveViewsMax bounds the browsers streamed to at once.
	LiveViewsMax int    `envconfig:"LIVE_VIEWS_MAX" default:"100"`
	LogLevel     string `envconfig:"LOG_LEVEL" default:"info"`
	// ShutdownTimeout bounds the stop: streams end at once (browsers
	// reconnect elsewhere), so little is needed.
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"5s"`
}

func (s *settings) Validate() error {
	switch {
	case s.Namespace == "":
		return errors.New("POD_NAMESPACE must name the namespace to watch (the Downward API's metadata.namespace)")
	case s.LiveViewsMax <= 0:
		return errors.New("LIVE_VIEWS_MAX must be positive")
	case s.ShutdownTimeout <= 0:
		return errors.New("SHUTDOWN_TIMEOUT must be positive")
	}
	return nil
}

func main() {
	var cfg settings
	if err := config.LoadEnv(&cfg); err != nil {
		fmt.Fprintf(os.Stderr, "clusterview: %v\n", err)
		os.Exit(2)
	}
	info := build.Current("clusterview")
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel))); err != nil {
		fmt.Fprintf(os.Stderr, "clusterview: config: LOG_LEVEL: %v\n", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})).
		With("service", info.Service, "version", info.Version, "pod", info.Instance)
	// net/http logs through the log package: it goes through log too, so
	// every line is JSON.
	telemetry.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg, info, log); err != nil {
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg settings, info build.Info, log *slog.Logger) error {
	hub := view.NewHub(cfg.LiveViewsMax)
	watch := watcher(cfg, info, log, hub)

	lis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR=%s: %w", cfg.HTTPAddr, err)
	}
	// /metrics shares the localhost port: no Prometheus reaches it there
	// (the pod's scrape annotation names the frontend's port), but
	// kubectl port-forward does, and the streams' count and length are on
	// it.
	metrics := telemetry.NewMetrics(info)
	mux := http.NewServeMux()
	mux.Handle("GET /cluster/stream", stream.Handler(hub))
	mux.Handle("GET /metrics", metrics.Handler())
	srv := &http.Server{Handler: metrics.Middleware(mux), ReadHeaderTimeout: 5 * time.Second, ErrorLog: telemetry.ErrorLog(log, "server", "http")}
	// Streams never end by themselves: closing the hub ends them, so the
	// graceful stop does not wait for SHUTDOWN_TIMEOUT.
	srv.RegisterOnShutdown(hub.Close)

	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	watched := make(chan error, 1)
	go func() { watched <- watch(watchCtx) }()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	log.Info("serving", "addr", lis.Addr().String(), "namespace", cfg.Namespace)

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case err := <-watched:
		if err != nil {
			return err
		}
	}
	stopWatching()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("stop the http server: %w", err)
	}
	return <-watched
}

// watcher returns the loop that keeps hub current. Outside a pod with a
// ServiceAccount token the loop only publishes why there is nothing to
// watch, and the page says so.
func watcher(cfg settings, info build.Info, log *slog.Logger, hub *view.Hub) func(context.Context) error {
	client, why := inCluster(info)
	if client == nil {
		log.Warn("the live view has nothing to watch", "why", why)
		return func(ctx context.Context) error { return view.Unwatched(ctx, hub, cfg.Namespace, why) }
	}
	return view.NewWatcher(log, client, cfg.Namespace, hub).Run
}

// inCluster is a client of the API server with the pod's credentials
// (the ServiceAccount token and CA mounted into this container, and the
// API server's address in the environment), or why there is none.
func inCluster(info build.Info) (*kube.Client, string) {
	client, err := kube.InCluster(info.Service + "/" + info.Version)
	if err != nil {
		return nil, "no Kubernetes API: " + err.Error()
	}
	return client, ""
}
