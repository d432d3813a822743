package work

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestErrorKinds(t *testing.T) {
	tests := []struct {
		code      codes.Code
		transient bool // a claim is retried
		attempt   bool // a task's call uses up an attempt
	}{
		{codes.Unavailable, true, false},
		{codes.DeadlineExceeded, true, false},
		{codes.Aborted, true, false},
		{codes.Canceled, false, false},        // stopped, or the lease lost
		{codes.ResourceExhausted, true, true}, // a variant over imageproc's limits
		{codes.NotFound, false, true},         // the photo was deleted
		{codes.InvalidArgument, false, true},  // imageproc refused the variant
		{codes.FailedPrecondition, false, true},
		{codes.Internal, false, true}, // a full disk, a bug: retried at once it would spin
		{codes.Unknown, false, true},
	}
	for _, tt := range tests {
		err := fmt.Errorf("call: %w", status.Error(tt.code, "x"))
		if got := transient(err); got != tt.transient {
			t.Errorf("transient(%s) = %v", tt.code, got)
		}
		var failed failedAttempt
		if got := errors.As(classify("download", err), &failed); got != tt.attempt {
			t.Errorf("classify(%s) uses up an attempt = %v, want %v", tt.code, got, tt.attempt)
		}
	}
}

func TestRetryAfterBacksOffWithJitter(t *testing.T) {
	cfg := Config{RetryBackoff: time.Second, RetryBackoffMax: 5 * time.Second}
	tests := []struct {
		attempt  int32
		min, max time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{4, 2500 * time.Millisecond, 5 * time.Second}, // capped
		{40, 2500 * time.Millisecond, 5 * time.Second},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 100 {
			d := cfg.retryAfter(tt.attempt)
			if d < tt.min || d > tt.max {
				t.Fatalf("attempt %d: retry after %v, want %v to %v", tt.attempt, d, tt.min, tt.max)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("attempt %d: every retry after %v: no jitter", tt.attempt, cfg.retryAfter(tt.attempt))
		}
	}
	if d := (Config{}).retryAfter(3); d != 0 {
		t.Errorf("no backoff configured: retry after %v, want at once", d)
	}
}
