package server

import (
	"context"
	"sync"
)

// flights coalesces concurrent calls with the same key into one run of a
// function, whose result every caller shares: 200 identical requests for a
// variant that does not exist yet render it once.
//
// Cancellation is shared with care. The run has a context of its own,
// detached from the caller that started it (it keeps that caller's values,
// such as its trace, but not its cancellation): one caller going away must
// not fail the others. When every caller has gone, nobody wants the
// result, and the run's context is cancelled so the work stops at once.
//
// A successful result stays joinable until every caller that received it
// has released it, so a caller arriving meanwhile shares it too. A caller
// releases it saying whether it used it; if one did not (its database
// write failed, say), the last one out calls unused, which can then clean
// up what the run made if nobody else kept it. unused is also called for a
// result that was finished after every caller had gone.
type flights[T any] struct {
	mu    sync.Mutex
	calls map[string]*flight[T]
}

type flight[T any] struct {
	key    string
	ctx    context.Context // the run's; its values are the first caller's
	cancel context.CancelFunc
	done   chan struct{} // closed when val and err are set
	unused func(context.Context, T)
	val    T
	err    error
	refs   int  // callers who have not released it
	wasted bool // a caller released it unused
}

// do returns fn's result for key, starting fn unless a run for key is
// joinable. If err is nil, the caller must call release once it is done
// with val, saying whether it used it. If ctx ends first, do returns ctx's
// error and the caller has nothing to release. unused (may be nil) is the
// clean-up of the run do starts.
func (g *flights[T]) do(ctx context.Context, key string, fn func(context.Context) (T, error), unused func(context.Context, T)) (val T, release func(used bool), err error) {
	g.mu.Lock()
	f := g.calls[key]
	if f == nil {
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight[T]{key: key, ctx: runCtx, cancel: cancel, done: make(chan struct{}), unused: unused}
		if g.calls == nil {
			g.calls = make(map[string]*flight[T])
		}
		g.calls[key] = f
		go g.run(f, fn)
	}
	f.refs++
	g.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		g.leave(f, false)
		var zero T
		return zero, nil, ctx.Err()
	}
	if f.err != nil {
		g.leave(f, true)
		var zero T
		return zero, nil, f.err
	}
	var once sync.Once
	return f.val, func(used bool) { once.Do(func() { g.leave(f, used) }) }, nil
}

func (g *flights[T]) run(f *flight[T], fn func(context.Context) (T, error)) {
	val, err := fn(f.ctx)
	g.mu.Lock()
	f.val, f.err = val, err
	close(f.done)
	orphan := f.refs == 0 // everyone left while it ran
	g.mu.Unlock()
	f.cancel() // frees the context's resources; nobody waits on it now
	if orphan && err == nil && f.unused != nil {
		f.unused(context.WithoutCancel(f.ctx), val)
	}
}

// leave drops one caller's interest in f.
func (g *flights[T]) leave(f *flight[T], used bool) {
	g.mu.Lock()
	f.refs--
	f.wasted = f.wasted || !used
	last := f.refs == 0
	if last && g.calls[f.key] == f {
		delete(g.calls, f.key) // the next caller starts afresh
	}
	finished := isClosed(f.done)
	g.mu.Unlock()
	if !last {
		return
	}
	if !finished {
		f.cancel() // nobody wants the result: stop the work
		return
	}
	if f.err == nil && f.wasted && f.unused != nil {
		f.unused(context.WithoutCancel(f.ctx), f.val)
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
