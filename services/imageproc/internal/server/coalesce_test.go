package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// refs is how many callers hold the flight for key (0 when none).
func (g *flights[T]) refs(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.calls[key]; f != nil {
		return f.refs
	}
	return 0
}

// waitUntil polls cond, failing the test after a generous bound.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// gate is a run that waits to be opened (or for its context to end), and
// records what it saw.
type gate struct {
	open    chan struct{}
	runs    atomic.Int32
	started chan context.Context // each run's context
}

func newGate() *gate {
	return &gate{open: make(chan struct{}), started: make(chan context.Context, 10)}
}

func (g *gate) fn(val string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		g.runs.Add(1)
		g.started <- ctx
		select {
		case <-g.open:
			return val, nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func TestFlightsShareOneRun(t *testing.T) {
	var g flights[string]
	gt := newGate()
	var unused atomic.Int32
	const n = 50
	var wg sync.WaitGroup
	results := make(chan string, n)
	for range n {
		wg.Go(func() {
			v, release, err := g.do(t.Context(), "k", gt.fn("rendered"), func(context.Context, string) { unused.Add(1) })
			if err != nil {
				t.Error(err)
				return
			}
			results <- v
			release(true)
		})
	}
	waitUntil(t, "every caller to join", func() bool { return g.refs("k") == n })
	close(gt.open)
	wg.Wait()
	close(results)
	for v := range results {
		if v != "rendered" {
			t.Errorf("got %q", v)
		}
	}
	if runs := gt.runs.Load(); runs != 1 {
		t.Fatalf("%d runs for %d identical calls, want 1", runs, n)
	}
	if unused.Load() != 0 || g.refs("k") != 0 || len(g.calls) != 0 {
		t.Fatalf("after every caller used and released it: unused %d, refs %d, calls %d", unused.Load(), g.refs("k"), len(g.calls))
	}
}

// One caller going away leaves the run to the others: its context stays
// alive, and they get the result.
func TestFlightsCallerLeavingKeepsTheRun(t *testing.T) {
	var g flights[string]
	gt := newGate()
	leaving, cancel := context.WithCancel(t.Context())
	left := make(chan error, 1)
	go func() {
		_, _, err := g.do(leaving, "k", gt.fn("rendered"), nil)
		left <- err
	}()
	runCtx := <-gt.started
	stays := make(chan string, 1)
	go func() {
		v, release, err := g.do(t.Context(), "k", gt.fn("not this one"), nil)
		if err != nil {
			t.Error(err)
		}
		release(true)
		stays <- v
	}()
	waitUntil(t, "the second caller to join", func() bool { return g.refs("k") == 2 })

	cancel()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that left got %v, want its own context's error", err)
	}
	if err := runCtx.Err(); err != nil {
		t.Fatalf("the run's context ended when one of two callers left: %v", err)
	}
	close(gt.open)
	if v := <-stays; v != "rendered" {
		t.Fatalf("the caller that stayed got %q", v)
	}
	if gt.runs.Load() != 1 {
		t.Fatalf("%d runs", gt.runs.Load())
	}
}

// When every caller has gone the run is cancelled, a finished result
// nobody took is handed to unused, and the next caller starts afresh.
func TestFlightsEveryCallerLeavingStopsTheRun(t *testing.T) {
	var g flights[string]
	gt := newGate()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if _, _, err := g.do(ctx, "k", gt.fn("rendered"), nil); !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v", err)
			}
		})
	}
	runCtx := <-gt.started
	waitUntil(t, "three callers", func() bool { return g.refs("k") == 3 })
	cancel()
	wg.Wait()
	select {
	case <-runCtx.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the run's context was not cancelled when every caller had gone")
	}

	// A run that finishes anyway (it had just written its result) is
	// cleaned up, since nobody will record it.
	orphaned := make(chan string, 1)
	finish := make(chan struct{})
	ctx2, cancel2 := context.WithCancel(t.Context())
	go func() {
		_, _, _ = g.do(ctx2, "k2", func(ctx context.Context) (string, error) {
			<-finish
			return "made", nil
		}, func(_ context.Context, v string) { orphaned <- v })
	}()
	waitUntil(t, "the caller of k2", func() bool { return g.refs("k2") == 1 })
	cancel2()
	waitUntil(t, "the caller of k2 to leave", func() bool { return g.refs("k2") == 0 })
	close(finish)
	if v := <-orphaned; v != "made" {
		t.Fatalf("unused got %q", v)
	}

	// A new caller does not join the cancelled run.
	close(gt.open)
	v, release, err := g.do(t.Context(), "k", gt.fn("again"), nil)
	if err != nil || v != "again" || gt.runs.Load() != 2 {
		t.Fatalf("after the run was abandoned: %q, %v, %d runs; want a new run", v, err, gt.runs.Load())
	}
	release(true)
}

// unused runs once, when the last caller releases, if any did not use the
// result, and never while another caller may still record it.
func TestFlightsUnusedByTheLastOut(t *testing.T) {
	var g flights[string]
	gt := newGate()
	close(gt.open)
	var unused atomic.Int32
	onUnused := func(context.Context, string) { unused.Add(1) }
	_, releaseA, err := g.do(t.Context(), "k", gt.fn("v"), onUnused)
	if err != nil {
		t.Fatal(err)
	}
	_, releaseB, err := g.do(t.Context(), "k", gt.fn("v"), onUnused) // joins: not yet released
	if err != nil {
		t.Fatal(err)
	}
	if gt.runs.Load() != 1 {
		t.Fatalf("a caller arriving before the result was released ran again: %d runs", gt.runs.Load())
	}
	releaseA(false)
	if unused.Load() != 0 {
		t.Fatal("unused ran while another caller held the result")
	}
	releaseB(true)
	releaseB(true) // a second release is a no-op
	if unused.Load() != 1 {
		t.Fatalf("unused ran %d times, want once", unused.Load())
	}
}
