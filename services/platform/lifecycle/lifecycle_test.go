package lifecycle_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/grpcmetrics"
	"github.com/kubelab/kubelab/services/platform/grpcserver"
	"github.com/kubelab/kubelab/services/platform/health"
	"github.com/kubelab/kubelab/services/platform/lifecycle"
	"github.com/kubelab/kubelab/services/platform/telemetry"
)

type fixture struct {
	httpURL  string
	grpcConn *grpc.ClientConn
	cancel   context.CancelFunc
	done     chan error
}

// start runs an HTTP server (with /slow, which takes slowFor, and the health
// routes) and a gRPC server under a Runner.
func start(t *testing.T, cfg lifecycle.Config, slowFor time.Duration) *fixture {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := health.NewChecker(log, 50*time.Millisecond, time.Second)
	mux := http.NewServeMux()
	h.Routes(mux)
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(slowFor)
		_, _ = io.WriteString(w, "done")
	})
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpcserver.New(grpcserver.Options{Log: log, Metrics: grpcmetrics.New(telemetry.NewMetrics(build.Current("test")).Registry), Health: h, Instance: "pod-a"})

	r := lifecycle.New(log, h, cfg)
	r.HTTP("http", httpLis, &http.Server{Handler: mux, ReadHeaderTimeout: time.Second})
	r.GRPC(grpcLis, gs)
	r.Go(func(ctx context.Context) error { h.Run(ctx); return nil })

	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{httpURL: "http://" + httpLis.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { f.done <- r.Run(ctx) }()
	f.grpcConn, err = grpc.NewClient(grpcLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.grpcConn.Close(); cancel() })
	waitFor(t, "ready", func() bool { return f.status(t, "/readyz") == http.StatusOK })
	return f
}

func (f *fixture) status(t *testing.T, path string) int {
	t.Helper()
	resp, err := http.Get(f.httpURL + path)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func (f *fixture) grpcHealth(t *testing.T) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(f.grpcConn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("grpc health: %v", err)
	}
	return resp.Status
}

func TestShutdownDrainsThenStops(t *testing.T) {
	const drain = 400 * time.Millisecond
	f := start(t, lifecycle.Config{DrainDelay: drain, ShutdownTimeout: 3 * time.Second}, 600*time.Millisecond)
	if s := f.grpcHealth(t); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc health before SIGTERM = %v", s)
	}

	inflight := make(chan string, 1)
	go func() {
		resp, err := http.Get(f.httpURL + "/slow")
		if err != nil {
			inflight <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		inflight <- string(b)
	}()
	time.Sleep(50 * time.Millisecond) // the slow request is now in flight

	stopped := time.Now()
	f.cancel() // what SIGTERM does through signal.NotifyContext

	// Readiness fails at once, on both protocols...
	waitFor(t, "readyz 503", func() bool { return f.status(t, "/readyz") == http.StatusServiceUnavailable })
	if s := f.grpcHealth(t); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("grpc health while draining = %v", s)
	}
	// ...while the server still answers new requests during the drain.
	if code := f.status(t, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz during drain = %d, want 200", code)
	}

	if got := <-inflight; got != "done" {
		t.Fatalf("in-flight request = %q, want it to complete", got)
	}
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatalf("Run = %v, want clean stop", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if elapsed := time.Since(stopped); elapsed < drain {
		t.Fatalf("stopped after %v, before the %v drain delay", elapsed, drain)
	}
	if f.status(t, "/healthz") != 0 {
		t.Fatal("server still answering after Run returned")
	}
}

func TestShutdownForcedAfterTimeout(t *testing.T) {
	f := start(t, lifecycle.Config{DrainDelay: 0, ShutdownTimeout: 100 * time.Millisecond}, 3*time.Second)
	go func() {
		if resp, err := http.Get(f.httpURL + "/slow"); err == nil {
			_ = resp.Body.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	f.cancel()
	select {
	case err := <-f.done:
		if err == nil || !strings.Contains(err.Error(), "SHUTDOWN_TIMEOUT") {
			t.Fatalf("Run = %v, want an error naming SHUTDOWN_TIMEOUT", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("forced stop did not happen")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
