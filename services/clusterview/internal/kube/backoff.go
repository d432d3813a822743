package kube

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff bounds the waits between failed tries: the first wait is First,
// each next one twice the last, up to Limit. Each wait is also lengthened
// by a random part of up to its own length, so that the sidecars of many
// pods, failing together when the API server restarts, do not all come
// back in the same instant. client-go's reflector uses the same figures.
type Backoff struct {
	First, Limit time.Duration
}

// defaultBackoff is what an Informer waits after failures: 0.8 s, 1.6 s,
// 3.2 s, … up to 30 s, each plus up to as much again.
func defaultBackoff() Backoff {
	return Backoff{First: 800 * time.Millisecond, Limit: 30 * time.Second}
}

// retrier is one loop's place in its Backoff.
type retrier struct {
	Backoff
	next time.Duration
}

// wait sleeps for the next wait, or until ctx ends; it says whether to
// go on.
func (r *retrier) wait(ctx context.Context) bool {
	d := max(r.next, r.First)
	r.next = min(2*d, r.Limit)
	t := time.NewTimer(d + rand.N(d+1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// reset starts the waits from First again, after a success.
func (r *retrier) reset() { r.next = 0 }
