package demo

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// recorder stands in for health.Checker.ForceUnready and remembers each call.
type recorder struct {
	mu    sync.Mutex
	calls []bool
}

func (r *recorder) set(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, on)
}

func (r *recorder) got() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.calls...)
}

func newControls(t *testing.T) (*Controls, *recorder) {
	t.Helper()
	rec := &recorder{}
	return New(slog.New(slog.DiscardHandler), rec.set), rec
}

func TestApplyChecksEveryValueFirst(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change Change
		want   string // in the error
	}{
		{"negative error rate", Change{ErrorRate: new(-0.1)}, "error_rate"},
		{"error rate over 1", Change{ErrorRate: new(1.5)}, "error_rate"},
		{"NaN error rate", Change{ErrorRate: new(math.NaN())}, "error_rate"},
		{"negative latency", Change{Latency: new(-time.Second)}, "latency"},
		{"latency over the cap", Change{Latency: new(MaxLatency + 1)}, "latency"},
		{"unready for zero", Change{Unready: new(true), UnreadyFor: new(time.Duration(0))}, "unready_for 0s: want 1s to 10m0s"},
		{"unready for too short", Change{Unready: new(true), UnreadyFor: new(MinUnreadyFor - 1)}, "unready_for"},
		{"unready for too long", Change{Unready: new(true), UnreadyFor: new(MaxUnreadyFor + 1)}, "unready_for"},
		{"unready for without unready", Change{UnreadyFor: new(time.Minute)}, `"unready": true`},
		{"unready for with recover", Change{Unready: new(false), UnreadyFor: new(time.Minute)}, `"unready": true`},
		// One bad value keeps the good ones from applying.
		{"unready with a bad latency", Change{Unready: new(true), ErrorRate: new(0.5), Latency: new(-time.Second)}, "latency"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newControls(t)
			st, err := c.Apply(t.Context(), tt.change)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply(%+v) = %v, want an error with %q", tt.change, err, tt.want)
			}
			if st.Active() || c.State().Active() || len(rec.got()) != 0 {
				t.Fatalf("a rejected change applied: returned %+v, state %+v, readiness calls %v", st, c.State(), rec.got())
			}
		})
	}
}

func TestApplyChangesOnlyWhatItNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := newControls(t)
		start := time.Now()
		if _, err := c.Apply(t.Context(), Change{Unready: new(true), ErrorRate: new(0.25), Latency: new(5 * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		want := State{Unready: true, UnreadyUntil: start.Add(DefaultUnreadyFor), ErrorRate: 0.25, Latency: 5 * time.Millisecond}
		if got := c.State(); got != want {
			t.Fatalf("state %+v, want %+v", got, want)
		}
		if _, err := c.Apply(t.Context(), Change{ErrorRate: new(0.5)}); err != nil {
			t.Fatal(err)
		}
		want.ErrorRate = 0.5
		if got := c.State(); got != want {
			t.Fatalf("after an error-rate change: state %+v, want %+v", got, want)
		}
		if _, err := c.Apply(t.Context(), Off()); err != nil {
			t.Fatal(err)
		}
		if got, calls := c.State(), rec.got(); got != (State{}) || len(calls) != 2 || !calls[0] || calls[1] {
			t.Fatalf("after Off: state %+v, readiness calls %v", got, calls)
		}
	})
}

// TestForcedUnreadinessEndsByItself runs each script on synctest's fake
// clock: time jumps to each step at once, so minutes take no time.
func TestForcedUnreadinessEndsByItself(t *testing.T) {
	type step struct {
		at      time.Duration // since the start
		apply   *Change       // nil: only look
		unready bool          // the state after the step
		until   time.Duration // UnreadyUntil since the start; 0: zero
	}
	on := func(d time.Duration) *Change {
		ch := Change{Unready: new(true)}
		if d > 0 {
			ch.UnreadyFor = &d
		}
		return &ch
	}
	for _, tt := range []struct {
		name  string
		steps []step
		calls []bool // to the readiness, in order, over the whole script
	}{{
		name: "default",
		steps: []step{
			{at: 0, apply: on(0), unready: true, until: DefaultUnreadyFor},
			{at: DefaultUnreadyFor - 1, unready: true, until: DefaultUnreadyFor},
			{at: DefaultUnreadyFor},
		},
		calls: []bool{true, false},
	}, {
		name: "shortest",
		steps: []step{
			{at: 0, apply: on(MinUnreadyFor), unready: true, until: MinUnreadyFor},
			{at: MinUnreadyFor},
		},
		calls: []bool{true, false},
	}, {
		name: "longest",
		steps: []step{
			{at: 0, apply: on(MaxUnreadyFor), unready: true, until: MaxUnreadyFor},
			{at: MaxUnreadyFor - 1, unready: true, until: MaxUnreadyFor},
			{at: MaxUnreadyFor},
		},
		calls: []bool{true, false},
	}, {
		name: "turned on again: a new count",
		steps: []step{
			{at: 0, apply: on(10 * time.Second), unready: true, until: 10 * time.Second},
			{at: 5 * time.Second, apply: on(10 * time.Second), unready: true, until: 15 * time.Second},
			{at: 12 * time.Second, unready: true, until: 15 * time.Second},
			{at: 15 * time.Second},
		},
		calls: []bool{true, true, false},
	}, {
		name: "recovered early: the timer does nothing",
		steps: []step{
			{at: 0, apply: on(10 * time.Second), unready: true, until: 10 * time.Second},
			{at: 3 * time.Second, apply: &Change{Unready: new(false)}},
			{at: MaxUnreadyFor},
		},
		calls: []bool{true, false},
	}, {
		name: "faults changed meanwhile: the end stays",
		steps: []step{
			{at: 0, apply: on(10 * time.Second), unready: true, until: 10 * time.Second},
			{at: 4 * time.Second, apply: &Change{ErrorRate: new(0.5)}, unready: true, until: 10 * time.Second},
			{at: 10 * time.Second},
		},
		calls: []bool{true, false},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, rec := newControls(t)
				start := time.Now()
				for _, s := range tt.steps {
					time.Sleep(time.Until(start.Add(s.at)))
					synctest.Wait() // a timer due now has done its work
					if s.apply != nil {
						if _, err := c.Apply(t.Context(), *s.apply); err != nil {
							t.Fatalf("at %v: %v", s.at, err)
						}
					}
					want := State{Unready: s.unready}
					if s.until > 0 {
						want.UnreadyUntil = start.Add(s.until)
					}
					if got := c.State(); got.Unready != want.Unready || !got.UnreadyUntil.Equal(want.UnreadyUntil) {
						t.Fatalf("at %v: unready %v until %v, want %v until %v", s.at, got.Unready, got.UnreadyUntil, want.Unready, want.UnreadyUntil)
					}
				}
				time.Sleep(2 * MaxUnreadyFor)
				synctest.Wait()
				if got := rec.got(); !slices.Equal(got, tt.calls) {
					t.Fatalf("readiness calls %v, want %v", got, tt.calls)
				}
			})
		})
	}
}

func TestMiddlewareInjectsErrorsAtTheRate(t *testing.T) {
	c, _ := newControls(t)
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }),
		func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	count := func(n int) (failed int) {
		for range n {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			if rec.Code == http.StatusServiceUnavailable {
				failed++
			}
		}
		return failed
	}
	if f := count(200); f != 0 {
		t.Fatalf("%d injected failures with controls off", f)
	}
	if _, err := c.Apply(t.Context(), Change{ErrorRate: new(1.0)}); err != nil {
		t.Fatal(err)
	}
	if f := count(50); f != 50 {
		t.Fatalf("error rate 1 failed %d of 50", f)
	}
	if _, err := c.Apply(t.Context(), Change{ErrorRate: new(0.5)}); err != nil {
		t.Fatal(err)
	}
	// 2000 draws at p=0.5: outside 800..1200 has probability ~1e-19.
	if f := count(2000); f < 800 || f > 1200 {
		t.Fatalf("error rate 0.5 failed %d of 2000", f)
	}
}

func TestLatencyStopsWithTheRequest(t *testing.T) {
	c, _ := newControls(t)
	if _, err := c.Apply(t.Context(), Change{Latency: new(MaxLatency)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	done := make(chan bool)
	go func() { done <- c.Inject(ctx, func() {}) }()
	select {
	case <-done:
	case <-time.After(MaxLatency / 2):
		t.Fatal("injected latency ignored the request's context")
	}
}
