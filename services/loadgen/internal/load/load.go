// Package load drives a target at a fixed rate (open loop) or as fast as a
// fixed number of workers can (closed loop), for a bounded time.
package load

import (
	"context"
	"sync"
	"time"

	"github.com/kubelab/kubelab/services/loadgen/internal/stats"
)

// Target is what loadgen calls: one request per Hit. The engine measures
// the latency; Hit fills in who answered or how it failed.
type Target interface {
	Hit(ctx context.Context) stats.Outcome
}

// Plan is how hard and how long to drive a target.
type Plan struct {
	// Rate is requests per second; 0 means closed loop: Concurrency
	// workers each send the next request as soon as the last one ends.
	Rate float64
	// Duration bounds the run; 0 runs until ctx ends.
	Duration time.Duration
	// Concurrency bounds requests in flight.
	Concurrency int
	// Timeout bounds each request.
	Timeout time.Duration
}

// Run drives target until the plan's duration has passed (an open loop
// then has sent every request due in it) or ctx ends, then waits for
// requests in flight. Every interval it closes the recorder's
// current window and passes it to tick.
func Run(ctx context.Context, plan Plan, target Target, rec *stats.Recorder, interval time.Duration, tick func(stats.Interval)) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if plan.Rate > 0 {
			openLoop(ctx, plan, target, rec)
			return
		}
		if plan.Duration > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, plan.Duration)
			defer cancel()
		}
		closedLoop(ctx, plan, target, rec)
	}()
	for {
		select {
		case <-ticker.C:
			tick(rec.Tick())
		case <-done:
			if iv, ok := rec.Last(); ok {
				tick(iv)
			}
			return
		}
	}
}

// hit runs one request. Its latency counts from when it was due, not when
// it was sent: if loadgen (or the target) falls behind, the wait shows in
// the percentiles instead of hiding (no coordinated omission).
func hit(ctx context.Context, plan Plan, target Target, rec *stats.Recorder, due time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), plan.Timeout)
	defer cancel()
	o := target.Hit(ctx)
	o.Latency = time.Since(due)
	rec.Record(o)
}

// openLoop sends the requests due every 1/Rate seconds from now until
// Duration has passed: Rate×Duration of them, even when loadgen itself was
// held up (a busy node, a throttled container) and sends some late. A late
// request still counts its latency from when it was due. Only the
// Concurrency cap drops requests: one due while every slot is taken waits
// for a slot, and none is sent once Duration has passed.
func openLoop(ctx context.Context, plan Plan, target Target, rec *stats.Recorder) {
	slots := make(chan struct{}, plan.Concurrency)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	every := time.Duration(float64(time.Second) / plan.Rate)
	start := time.Now()
	var over <-chan time.Time // never, without a Duration
	if plan.Duration > 0 {
		end := time.NewTimer(plan.Duration)
		defer end.Stop()
		over = end.C
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * every)
		if plan.Duration > 0 && due.Sub(start) >= plan.Duration {
			return
		}
		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		select {
		case slots <- struct{}{}: // a free slot wins over a passed end
		default:
			select {
			case slots <- struct{}{}:
			case <-over:
				return
			case <-ctx.Done():
				return
			}
		}
		inflight.Go(func() {
			defer func() { <-slots }()
			hit(ctx, plan, target, rec, due)
		})
	}
}

func closedLoop(ctx context.Context, plan Plan, target Target, rec *stats.Recorder) {
	var workers sync.WaitGroup
	for range plan.Concurrency {
		workers.Go(func() {
			for ctx.Err() == nil {
				hit(ctx, plan, target, rec, time.Now())
			}
		})
	}
	workers.Wait()
}
