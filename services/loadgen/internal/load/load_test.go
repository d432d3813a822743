package load

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/loadgen/internal/stats"
)

type slowTarget struct {
	delay    time.Duration
	inflight atomic.Int32
	peak     atomic.Int32
	hits     atomic.Int32
}

func (s *slowTarget) Hit(ctx context.Context) stats.Outcome {
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	s.hits.Add(1)
	select {
	case <-time.After(s.delay):
		return stats.Outcome{Version: "v1", Pod: "p"}
	case <-ctx.Done():
		return stats.Outcome{Failure: "timeout"}
	}
}

func TestRunModes(t *testing.T) {
	tests := []struct {
		name               string
		plan               Plan
		delay              time.Duration
		minHits, maxHits   int32
		maxPeak            int32
		wantTimeoutFailure bool
	}{
		// 100/s for 500ms: exactly 50 requests, however late the machine
		// lets some of them go; each 20ms, so about 2 in flight.
		{"open loop keeps the rate", Plan{Rate: 100, Duration: 500 * time.Millisecond, Concurrency: 64, Timeout: time.Second}, 20 * time.Millisecond, 50, 50, 64, false},
		// Closed loop: 4 workers, 10ms each, for 300ms: about 120 on an
		// idle machine; at least two rounds each on a busy one.
		{"closed loop keeps concurrency", Plan{Duration: 300 * time.Millisecond, Concurrency: 4, Timeout: time.Second}, 10 * time.Millisecond, 8, 130, 4, false},
		// Concurrency 2 caps what is in flight even when the rate asks more.
		{"concurrency caps the open loop", Plan{Rate: 1000, Duration: 200 * time.Millisecond, Concurrency: 2, Timeout: time.Second}, 50 * time.Millisecond, 2, 12, 2, false},
		// Due at 0 and 50ms, each cut off at 10ms.
		{"timeouts are failures", Plan{Rate: 20, Duration: 100 * time.Millisecond, Concurrency: 8, Timeout: 10 * time.Millisecond}, time.Second, 2, 2, 8, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := &slowTarget{delay: tt.delay}
			rec := stats.NewRecorder(nil)
			ticks := 0
			Run(t.Context(), tt.plan, target, rec, 50*time.Millisecond, func(stats.Interval) { ticks++ })
			if target.inflight.Load() != 0 {
				t.Fatal("Run returned with requests in flight")
			}
			sum := rec.Summary("x")
			hits := target.hits.Load()
			if hits < tt.minHits || hits > tt.maxHits || int32(sum.Sent) != hits {
				t.Fatalf("%d hits (%d recorded), want %d..%d", hits, sum.Sent, tt.minHits, tt.maxHits)
			}
			if target.peak.Load() > tt.maxPeak {
				t.Fatalf("%d in flight at once, cap %d", target.peak.Load(), tt.maxPeak)
			}
			if tt.wantTimeoutFailure != (sum.Failures["timeout"] > 0) || ticks == 0 {
				t.Fatalf("failures %v, %d ticks", sum.Failures, ticks)
			}
		})
	}
}
