// Package demo holds the switches an instructor flips to show Kubernetes
// reacting: fail readiness (the pod leaves the Service's endpoints but is
// not restarted), inject errors and latency (what a bad rollout looks like
// to loadgen), and crash (kubelet restarts the container).
//
// Forced unreadiness ends by itself: once the pod has left its Service,
// every request through the Service, the admin page's Recover button
// included, reaches another pod, so nothing could switch it back.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// MaxLatency bounds injected latency, so a typo cannot hang every request.
const MaxLatency = 10 * time.Second

// How long forced unreadiness lasts. The default is long enough to watch
// the EndpointSlice change (the readiness probe runs every 2s) and short
// enough to wait out; the bounds keep a typo from stranding a pod.
const (
	DefaultUnreadyFor = time.Minute
	MinUnreadyFor     = time.Second
	MaxUnreadyFor     = 10 * time.Minute
)

// State is what is switched on, shown on the cluster panel.
type State struct {
	Unready bool
	// UnreadyUntil is when forced unreadiness ends by itself; zero while
	// readiness is not forced.
	UnreadyUntil time.Time
	ErrorRate    float64
	Latency      time.Duration
}

// Active reports whether any control is on.
func (s State) Active() bool { return s.Unready || s.ErrorRate > 0 || s.Latency > 0 }

// Change is one request to the controls; a nil field keeps its value.
type Change struct {
	Unready *bool
	// UnreadyFor is how long the unreadiness that Unready turns on lasts
	// (nil: DefaultUnreadyFor). Turning it on again starts a new count.
	UnreadyFor *time.Duration
	ErrorRate  *float64
	Latency    *time.Duration
}

// Off is the change that switches every control off.
func Off() Change {
	return Change{Unready: new(false), ErrorRate: new(0.0), Latency: new(time.Duration(0))}
}

// RangeError is a value outside what a control accepts, named by its JSON
// field; the frontend's pages say it in the reader's language.
type RangeError struct {
	Field           string
	Value, Min, Max string
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("%s %s: want %s to %s", e.Field, e.Value, e.Min, e.Max)
}

// check names the first bad value of ch, by its JSON field name.
func (ch Change) check() error {
	if r := ch.ErrorRate; r != nil && (*r < 0 || *r > 1 || math.IsNaN(*r)) {
		return &RangeError{Field: "error_rate", Value: fmt.Sprint(*r), Min: "0", Max: "1"}
	}
	if l := ch.Latency; l != nil && (*l < 0 || *l > MaxLatency) {
		return &RangeError{Field: "latency", Value: l.String(), Min: "0", Max: MaxLatency.String()}
	}
	if d := ch.UnreadyFor; d != nil {
		if ch.Unready == nil || !*ch.Unready {
			return errors.New("unready_for says how long forced unreadiness lasts: send it with \"unready\": true")
		}
		if *d < MinUnreadyFor || *d > MaxUnreadyFor {
			return &RangeError{Field: "unready_for", Value: d.String(), Min: MinUnreadyFor.String(), Max: MaxUnreadyFor.String()}
		}
	}
	return nil
}

// Controls holds the current state. Make it with New.
type Controls struct {
	log *slog.Logger
	// setUnready applies readiness changes (health.Checker.ForceUnready).
	setUnready func(bool)

	// mu orders changes, the expiry's included, so readiness is applied
	// in the order the state changed.
	mu sync.Mutex
	// expiry counts readiness changes, so a timer that fires after a
	// later change (a renewal, Recover) knows it is stale.
	expiry uint64
	timer  *time.Timer
	// state is read lock-free on every request (Inject, the info API).
	state atomic.Pointer[State]
}

// New returns Controls, all off, that report forced unreadiness through
// setUnready and log when it ends by itself.
func New(log *slog.Logger, setUnready func(bool)) *Controls {
	c := &Controls{log: log, setUnready: setUnready}
	c.state.Store(&State{})
	return c
}

// State returns the current state.
func (c *Controls) State() State { return *c.state.Load() }

// Apply checks every value of ch, then applies them all; on an error it
// changes nothing. ctx's values (the request's trace) go with the log line
// of an expiry it arms.
func (c *Controls) Apply(ctx context.Context, ch Change) (State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := *c.state.Load()
	if err := ch.check(); err != nil {
		return next, err
	}
	if ch.ErrorRate != nil {
		next.ErrorRate = *ch.ErrorRate
	}
	if ch.Latency != nil {
		next.Latency = *ch.Latency
	}
	if ch.Unready == nil {
		c.state.Store(&next)
		return next, nil
	}
	c.expiry++
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	next.Unready, next.UnreadyUntil = *ch.Unready, time.Time{}
	if next.Unready {
		d := DefaultUnreadyFor
		if ch.UnreadyFor != nil {
			d = *ch.UnreadyFor
		}
		next.UnreadyUntil = time.Now().Add(d)
		expiry, ctx := c.expiry, context.WithoutCancel(ctx)
		c.timer = time.AfterFunc(d, func() { c.expire(ctx, expiry, d) })
	}
	c.state.Store(&next)
	c.setUnready(next.Unready)
	return next, nil
}

// expire ends forced unreadiness, unless a later change replaced it.
func (c *Controls) expire(ctx context.Context, expiry uint64, after time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if expiry != c.expiry {
		return
	}
	c.timer = nil
	next := *c.state.Load()
	next.Unready, next.UnreadyUntil = false, time.Time{}
	c.state.Store(&next)
	c.setUnready(false)
	c.log.InfoContext(ctx, "forced unreadiness ended by itself; readiness follows the checks again", "after", after.String())
}

// Inject delays or fails a request as the state says. It returns true if
// it answered the request with an injected error.
func (c *Controls) Inject(ctx context.Context, fail func()) bool {
	st := c.state.Load()
	if st.Latency > 0 {
		t := time.NewTimer(st.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if st.ErrorRate > 0 && rand.Float64() < st.ErrorRate {
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
