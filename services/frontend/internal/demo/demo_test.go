package demo

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSetValidatesAndApplies(t *testing.T) {
	var forced []bool
	c := New(func(on bool) { forced = append(forced, on) })
	for _, bad := range []State{{ErrorRate: -0.1}, {ErrorRate: 1.5}, {Latency: -time.Second}, {Latency: MaxLatency + 1}} {
		if err := c.Set(bad); err == nil {
			t.Errorf("Set(%+v) accepted", bad)
		}
	}
	if c.State().Active() || len(forced) != 0 {
		t.Fatal("a rejected Set changed the state")
	}
	want := State{Unready: true, ErrorRate: 0.25, Latency: 5 * time.Millisecond}
	if err := c.Set(want); err != nil {
		t.Fatal(err)
	}
	if c.State() != want || len(forced) != 1 || !forced[0] {
		t.Fatalf("state %+v, forced %v", c.State(), forced)
	}
}

func TestMiddlewareInjectsErrorsAtTheRate(t *testing.T) {
	c := New(func(bool) {})
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
	if err := c.Set(State{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	if f := count(50); f != 50 {
		t.Fatalf("error rate 1 failed %d of 50", f)
	}
	if err := c.Set(State{ErrorRate: 0.5}); err != nil {
		t.Fatal(err)
	}
	// 2000 draws at p=0.5: outside 800..1200 has probability ~1e-19.
	if f := count(2000); f < 800 || f > 1200 {
		t.Fatalf("error rate 0.5 failed %d of 2000", f)
	}
}

func TestLatencyStopsWithTheRequest(t *testing.T) {
	c := New(func(bool) {})
	if err := c.Set(State{Latency: MaxLatency}); err != nil {
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
