// Package lifecycle runs a service's servers and stops them the way a
// rolling update needs. When Kubernetes deletes a pod it sends SIGTERM and,
// at the same moment, starts removing the pod from its Services' endpoints;
// kube-proxy and clients learn of that a little later. So on SIGTERM a
// kubelab service:
//
//  1. fails readiness at once (no new traffic is routed to it once the
//     endpoint update lands),
//  2. keeps serving for DrainDelay, answering whatever still arrives,
//  3. stops gracefully, letting in-flight calls finish, bounded by
//     ShutdownTimeout, which starts only after the drain,
//  4. forces the stop if that deadline passes.
//
// DrainDelay + ShutdownTimeout must stay below the pod's
// terminationGracePeriodSeconds, or kubelet's SIGKILL cuts step 3 short.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/kubelab/kubelab/services/platform/health"
	"github.com/kubelab/kubelab/services/platform/telemetry"
)

// Config is the shutdown timing, from the environment.
type Config struct {
	DrainDelay      time.Duration `envconfig:"DRAIN_DELAY" default:"5s"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"10s"`
}

// Runner runs servers and background loops until its context ends, then
// shuts them down in the order above.
type Runner struct {
	log    *slog.Logger
	health *health.Checker
	cfg    Config

	servers    []server
	background []func(context.Context) error
}

type server struct {
	name     string
	lis      net.Listener
	serve    func(net.Listener) error
	graceful func(context.Context) error
	force    func()
	drain    func() // optional: called when draining starts
}

// New returns a Runner that reports draining through h.
func New(log *slog.Logger, h *health.Checker, cfg Config) *Runner {
	return &Runner{log: log, health: h, cfg: cfg}
}

// GRPC adds a gRPC server on lis.
func (r *Runner) GRPC(lis net.Listener, s *grpc.Server) {
	r.servers = append(r.servers, server{
		name:  "grpc",
		lis:   lis,
		serve: s.Serve,
		graceful: func(ctx context.Context) error {
			done := make(chan struct{})
			go func() { s.GracefulStop(); close(done) }()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
		force: s.Stop,
	})
}

// HTTP adds an HTTP server on lis. What net/http logs itself (a TLS
// handshake gone wrong, a panic it recovered) goes through the service's
// logger, as JSON, unless s has an ErrorLog of its own.
func (r *Runner) HTTP(name string, lis net.Listener, s *http.Server) {
	if s.ErrorLog == nil {
		s.ErrorLog = telemetry.ErrorLog(r.log, "server", name)
	}
	r.servers = append(r.servers, server{
		name: name,
		lis:  lis,
		serve: func(l net.Listener) error {
			if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
		graceful: s.Shutdown,
		force:    func() { _ = s.Close() },
		// While draining, answer with "Connection: close" so keep-alive
		// clients (kube-proxy pins a connection to one pod) reconnect and
		// land on a pod that is staying.
		drain: func() { s.SetKeepAlivesEnabled(false) },
	})
}

// Go adds a loop that runs until the servers have stopped (health checks,
// config watchers). An error from it stops the service.
func (r *Runner) Go(fn func(context.Context) error) {
	r.background = append(r.background, fn)
}

// Run serves until ctx ends (SIGTERM) or a server fails, then drains and
// stops. It returns nil after a clean stop.
func (r *Runner) Run(ctx context.Context) error {
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()

	failed := make(chan error, len(r.servers)+len(r.background))
	var bg sync.WaitGroup
	for _, fn := range r.background {
		bg.Go(func() {
			if err := fn(bgCtx); err != nil {
				failed <- err
			}
		})
	}
	var serving sync.WaitGroup
	for _, s := range r.servers {
		r.log.Info("serving", "server", s.name, "addr", s.lis.Addr().String())
		serving.Go(func() {
			if err := s.serve(s.lis); err != nil {
				failed <- fmt.Errorf("%s server: %w", s.name, err)
			}
		})
	}

	var cause error
	select {
	case <-ctx.Done():
		r.log.Info("shutdown requested; draining", "drain_delay", r.cfg.DrainDelay.String())
		r.health.SetDraining()
		for _, s := range r.servers {
			if s.drain != nil {
				s.drain()
			}
		}
		// Keep answering while endpoint removal propagates.
		time.Sleep(r.cfg.DrainDelay)
	case cause = <-failed:
		r.log.Error("stopping after failure", "err", cause)
		r.health.SetDraining()
	}

	r.health.Shutdown()
	stopCtx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownTimeout)
	defer cancel()
	var stopping sync.WaitGroup
	var forcedMu sync.Mutex
	var forced []string
	for _, s := range r.servers {
		stopping.Go(func() {
			if err := s.graceful(stopCtx); err != nil {
				s.force()
				forcedMu.Lock()
				forced = append(forced, s.name)
				forcedMu.Unlock()
			}
		})
	}
	stopping.Wait()
	serving.Wait()
	stopBackground()
	bg.Wait()

	if len(forced) > 0 {
		err := fmt.Errorf("graceful stop exceeded SHUTDOWN_TIMEOUT=%s; forced stop of %v", r.cfg.ShutdownTimeout, forced)
		return errors.Join(cause, err)
	}
	if cause != nil {
		return cause
	}
	r.log.Info("stopped cleanly")
	return nil
}
