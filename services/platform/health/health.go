// Package health answers Kubernetes' two questions about a pod, over HTTP
// and over gRPC (grpc.health.v1, for native grpc probes):
//
//   - liveness (/healthz): is this process working at all? Failing it makes
//     kubelet restart the container, so it checks nothing outside the process.
//   - readiness (/readyz, gRPC health): should this pod get traffic now?
//     Failing it removes the pod from its Services' endpoints. It fails while
//     a dependency is unreachable, while the process drains after SIGTERM,
//     and when a demo forces it.
package health

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// LivenessService is the grpc.health.v1 service name a liveness probe asks
// for; every other name follows readiness.
const LivenessService = "liveness"

// Check reports whether a dependency is usable. It must honour ctx.
type Check func(ctx context.Context) error

// Status is the outcome of one round of readiness checks.
type Status struct {
	Ready    bool              `json:"ready"`
	Draining bool              `json:"draining,omitempty"`
	Forced   bool              `json:"forced_unready,omitempty"`
	Failures map[string]string `json:"failures,omitempty"`
	Checked  time.Time         `json:"checked"`
}

// Checker runs readiness checks in the background and publishes one result
// to both HTTP and gRPC, so the two probes never disagree. Probes read the
// cached result: a probe storm never becomes a storm on the database.
type Checker struct {
	log      *slog.Logger
	interval time.Duration
	timeout  time.Duration
	grpc     *health.Server
	services []string

	mu     sync.Mutex
	checks map[string]Check

	draining atomic.Bool
	forced   atomic.Bool
	status   atomic.Pointer[Status]
	wake     chan struct{}

	// A round of checks can take up to timeout, and SetDraining or
	// ForceUnready may publish while one runs. publishMu orders the
	// publications: each reads draining and forced afresh, so a round that
	// began before SIGTERM can never publish SERVING after it (clients
	// watching grpc.health.v1 would send calls to a draining pod), and a
	// round older than the last one published is dropped as stale.
	publishMu sync.Mutex
	rounds    atomic.Uint64 // rounds started
	published uint64        // the round last published, under publishMu
}

// NewChecker returns a Checker that re-evaluates every interval, giving each
// check timeout. services are the gRPC service names whose health status it
// also sets (the empty name, the whole server, is always set).
func NewChecker(log *slog.Logger, interval, timeout time.Duration, services ...string) *Checker {
	c := &Checker{
		log:      log,
		interval: interval,
		timeout:  timeout,
		grpc:     health.NewServer(),
		services: append([]string{""}, services...),
		checks:   map[string]Check{},
		wake:     make(chan struct{}, 1),
	}
	// Liveness over grpc.health.v1: SERVING for as long as the process
	// runs, whatever its dependencies, so a grpc liveness probe restarts
	// a stuck process but never a healthy one whose database is down.
	c.grpc.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)
	// Not ready until the first round of checks has passed.
	c.publish(0, Status{Failures: map[string]string{"startup": "checks have not run yet"}, Checked: time.Now()})
	return c
}

// AddReadiness registers a dependency check. Add checks before Run.
func (c *Checker) AddReadiness(name string, check Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks[name] = check
}

// GRPCServer is the grpc.health.v1 implementation to register on a gRPC server.
func (c *Checker) GRPCServer() healthpb.HealthServer { return c.grpc }

// Status returns the latest result.
func (c *Checker) Status() Status { return *c.status.Load() }

// SetDraining marks the process as shutting down: readiness fails at once
// and stays failed.
func (c *Checker) SetDraining() {
	c.draining.Store(true)
	c.evaluate(context.Background())
}

// ForceUnready makes readiness fail (true) or follow the checks again
// (false). The readiness demo uses it to watch a pod leave its endpoints.
func (c *Checker) ForceUnready(on bool) {
	c.forced.Store(on)
	c.evaluate(context.Background())
}

// Run evaluates the checks every interval until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		c.evaluate(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.wake:
		}
	}
}

// Refresh asks Run for an evaluation now, without waiting for it.
func (c *Checker) Refresh() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Checker) evaluate(ctx context.Context) {
	round := c.rounds.Add(1)
	c.mu.Lock()
	checks := maps.Clone(c.checks)
	c.mu.Unlock()

	st := Status{Checked: time.Now()}
	if !c.draining.Load() {
		// Checks run concurrently so one slow dependency does not delay
		// the verdict on the others beyond timeout.
		var wg sync.WaitGroup
		var fmu sync.Mutex
		for name, check := range checks {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				if err := check(cctx); err != nil {
					fmu.Lock()
					if st.Failures == nil {
						st.Failures = map[string]string{}
					}
					st.Failures[name] = err.Error()
					fmu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	c.publish(round, st)
}

// publish makes st, the failures found by round, the current status. The
// draining and forced flags are read here, under publishMu, not when the
// round began: whatever a check found, they win.
func (c *Checker) publish(round uint64, st Status) {
	c.publishMu.Lock()
	defer c.publishMu.Unlock()
	if round < c.published {
		return // a newer round has already spoken
	}
	c.published = round
	st.Draining, st.Forced = c.draining.Load(), c.forced.Load()
	st.Ready = !st.Draining && !st.Forced && len(st.Failures) == 0
	prev := c.status.Swap(&st)
	if prev != nil && prev.Ready != st.Ready {
		c.log.Info("readiness changed", "ready", st.Ready, "draining", st.Draining,
			"forced", st.Forced, "failing", slices.Sorted(maps.Keys(st.Failures)))
	}
	serving := healthpb.HealthCheckResponse_NOT_SERVING
	if st.Ready {
		serving = healthpb.HealthCheckResponse_SERVING
	}
	for _, svc := range c.services {
		c.grpc.SetServingStatus(svc, serving)
	}
}

// Shutdown sets every gRPC service to NOT_SERVING for good, ending Watch
// streams; call it after draining, before stopping the gRPC server.
func (c *Checker) Shutdown() { c.grpc.Shutdown() }

// Routes adds /healthz and /readyz to mux.
func (c *Checker) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", c.serveLiveness)
	mux.HandleFunc("GET /readyz", c.serveReadiness)
}

func (c *Checker) serveLiveness(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

func (c *Checker) serveReadiness(w http.ResponseWriter, _ *http.Request) {
	st := c.Status()
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
