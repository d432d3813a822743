package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kubelab/kubelab/services/platform/health"
)

func newChecker() *health.Checker {
	return health.NewChecker(slog.New(slog.NewTextHandler(io.Discard, nil)), time.Hour, time.Second, "imageproc.v1.ImageService")
}

func probe(t *testing.T, c *health.Checker, path string) (int, health.Status) {
	t.Helper()
	mux := http.NewServeMux()
	c.Routes(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var st health.Status
	if path == "/readyz" {
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatalf("decode %s: %v (%s)", path, err, rec.Body)
		}
	}
	return rec.Code, st
}

func grpcStatus(t *testing.T, c *health.Checker, svc string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := c.GRPCServer().Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Status
}

func TestReadinessFollowsChecks(t *testing.T) {
	c := newChecker()
	var dbDown atomic.Bool
	c.AddReadiness("database", func(context.Context) error {
		if dbDown.Load() {
			return errors.New("connection refused")
		}
		return nil
	})

	// Before any evaluation the pod is not ready.
	if code, _ := probe(t, c, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("before first check: /readyz = %d, want 503", code)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go c.Run(ctx)
	waitReady(t, c, true)
	if s := grpcStatus(t, c, "imageproc.v1.ImageService"); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc service status = %v, want SERVING", s)
	}

	dbDown.Store(true)
	c.Refresh()
	waitReady(t, c, false)
	code, st := probe(t, c, "/readyz")
	if code != http.StatusServiceUnavailable || st.Failures["database"] != "connection refused" {
		t.Fatalf("/readyz = %d %+v, want 503 naming the database", code, st)
	}
	if s := grpcStatus(t, c, ""); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("grpc status = %v, want NOT_SERVING", s)
	}
	// Liveness does not depend on the database: restarting would not help.
	if code, _ := probe(t, c, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d with the database down, want 200", code)
	}
	if s := grpcStatus(t, c, health.LivenessService); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc liveness = %v with the database down, want SERVING", s)
	}
}

func TestDrainingAndForced(t *testing.T) {
	tests := []struct {
		name  string
		apply func(*health.Checker)
		check func(health.Status) bool
	}{
		{"draining", (*health.Checker).SetDraining, func(s health.Status) bool { return s.Draining }},
		{"forced", func(c *health.Checker) { c.ForceUnready(true) }, func(s health.Status) bool { return s.Forced }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChecker()
			c.ForceUnready(false) // first evaluation: no checks, so ready
			if !c.Status().Ready {
				t.Fatal("want ready with no checks")
			}
			tt.apply(c) // takes effect at once, without waiting for Run
			code, st := probe(t, c, "/readyz")
			if code != http.StatusServiceUnavailable || st.Ready || !tt.check(st) {
				t.Fatalf("/readyz = %d %+v", code, st)
			}
			if s := grpcStatus(t, c, ""); s != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Fatalf("grpc status = %v", s)
			}
		})
	}
}

func TestSlowCheckTimesOut(t *testing.T) {
	c := health.NewChecker(slog.New(slog.NewTextHandler(io.Discard, nil)), time.Hour, 20*time.Millisecond)
	c.AddReadiness("slow", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	c.ForceUnready(false)
	st := c.Status()
	if st.Ready || st.Failures["slow"] == "" {
		t.Fatalf("status = %+v, want the slow check to fail by its timeout", st)
	}
}

func waitReady(t *testing.T, c *health.Checker, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Status().Ready != want {
		if time.Now().After(deadline) {
			t.Fatalf("ready never became %v: %+v", want, c.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A round of checks that began before SIGTERM (or before a demo forced the
// pod unready, or before a newer round found a failure) and succeeds
// afterwards must not publish SERVING: clients watching grpc.health.v1
// would send calls to a pod that is leaving. The check blocks on a
// channel, so the interleaving is the same on every run.
func TestDrainingAndForcedWinOverARoundInFlight(t *testing.T) {
	tests := []struct {
		name  string
		apply func(*health.Checker, *atomic.Bool)
	}{
		{"draining", func(c *health.Checker, _ *atomic.Bool) { c.SetDraining() }},
		{"forced", func(c *health.Checker, _ *atomic.Bool) { c.ForceUnready(true) }},
		{"newer round failed", func(c *health.Checker, down *atomic.Bool) {
			down.Store(true)
			c.ForceUnready(false) // a second round, run to its end at once
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChecker() // an hour between rounds: only the first runs
			entered, release := make(chan struct{}), make(chan struct{})
			var first, down atomic.Bool
			c.AddReadiness("database", func(context.Context) error {
				if first.CompareAndSwap(false, true) {
					close(entered)
					<-release // the answer arrives after tt.apply
					return nil
				}
				if down.Load() {
					return errors.New("connection refused")
				}
				return nil
			})

			ctx, cancel := context.WithCancel(t.Context())
			ran := make(chan struct{})
			go func() { c.Run(ctx); close(ran) }()
			<-entered
			tt.apply(c, &down)
			if s := grpcStatus(t, c, "imageproc.v1.ImageService"); s != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Fatalf("right after %s: %v, want NOT_SERVING", tt.name, s)
			}
			// Run returns once the blocked round has published: the ticker
			// is an hour away, so nothing else can evaluate in between.
			cancel()
			close(release)
			<-ran

			for _, svc := range []string{"", "imageproc.v1.ImageService"} {
				if s := grpcStatus(t, c, svc); s != healthpb.HealthCheckResponse_NOT_SERVING {
					t.Errorf("service %q after the round in flight published: %v, want NOT_SERVING", svc, s)
				}
			}
			if code, st := probe(t, c, "/readyz"); code != http.StatusServiceUnavailable || st.Ready {
				t.Errorf("/readyz after the round in flight published = %d %+v, want 503", code, st)
			}
		})
	}
}
