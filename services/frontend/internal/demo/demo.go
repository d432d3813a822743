// Package demo holds the switches an instructor flips to show Kubernetes
// reacting: fail readiness (the pod leaves the Service's endpoints but is
// not restarted), inject errors and latency (what a bad rollout looks like
// to loadgen), and crash (kubelet restarts the container).
package demo

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"
)

// MaxLatency bounds injected latency, so a typo cannot hang every request.
const MaxLatency = 10 * time.Second

// State is what is switched on, shown on the cluster panel.
type State struct {
	Unready   bool          `json:"unready"`
	ErrorRate float64       `json:"error_rate"`
	Latency   time.Duration `json:"latency_ns"`
}

// Active reports whether any control is on.
func (s State) Active() bool { return s.Unready || s.ErrorRate > 0 || s.Latency > 0 }

// Controls holds the current state. The zero value is all off.
type Controls struct {
	unready   atomic.Bool
	errorRate atomic.Uint64 // float64 bits
	latency   atomic.Int64
	// setUnready applies readiness changes (health.Checker.ForceUnready).
	setUnready func(bool)
}

// New returns Controls that report forced unreadiness through setUnready.
func New(setUnready func(bool)) *Controls { return &Controls{setUnready: setUnready} }

// State returns the current state.
func (c *Controls) State() State {
	return State{
		Unready:   c.unready.Load(),
		ErrorRate: math.Float64frombits(c.errorRate.Load()),
		Latency:   time.Duration(c.latency.Load()),
	}
}

// Set changes the state, checking every value first.
func (c *Controls) Set(s State) error {
	if s.ErrorRate < 0 || s.ErrorRate > 1 || math.IsNaN(s.ErrorRate) {
		return fmt.Errorf("error_rate %v: want a fraction from 0 to 1", s.ErrorRate)
	}
	if s.Latency < 0 || s.Latency > MaxLatency {
		return fmt.Errorf("latency %v: want 0 to %v", s.Latency, MaxLatency)
	}
	c.unready.Store(s.Unready)
	c.setUnready(s.Unready)
	c.errorRate.Store(math.Float64bits(s.ErrorRate))
	c.latency.Store(int64(s.Latency))
	return nil
}

// Inject delays or fails a request as the state says. It returns true if
// it answered the request with an injected error.
func (c *Controls) Inject(ctx context.Context, fail func()) bool {
	if d := time.Duration(c.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if rate := math.Float64frombits(c.errorRate.Load()); rate > 0 && rand.Float64() < rate {
		fail()
		return true
	}
	return false
}

// Middleware applies Inject to next; fail writes the injected error.
func (c *Controls) Middleware(next http.Handler, fail func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.Inject(r.Context(), func() { fail(w, r) }) {
			return
		}
		next.ServeHTTP(w, r)
	})
}
