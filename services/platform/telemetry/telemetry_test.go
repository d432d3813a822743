package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/telemetry"
)

func TestLoggerAddsTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log, err := telemetry.NewLogger(&buf, "info", "service", "test")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3},
		SpanID:     trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled,
	})
	log.InfoContext(trace.ContextWithSpanContext(context.Background(), sc), "hello")
	log.DebugContext(context.Background(), "dropped at info level")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want 1 line, got %d: %s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["trace_id"] != sc.TraceID().String() || rec["span_id"] != sc.SpanID().String() || rec["service"] != "test" {
		t.Fatalf("record = %v", rec)
	}
}

func TestLoggerRejectsBadLevel(t *testing.T) {
	if _, err := telemetry.NewLogger(&bytes.Buffer{}, "loud"); err == nil {
		t.Fatal("want error for an unknown level")
	}
}

func TestHTTPMetricsUseRoutePatterns(t *testing.T) {
	m := telemetry.NewMetrics(build.Info{Service: "test", Version: "v9", Revision: "abc", GoVersion: "go"})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /images/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })
	h := m.Middleware(mux)
	for _, p := range []string{"/images/a", "/images/b", "/images/c", "/nowhere"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	want := `
# HELP http_server_requests_total HTTP requests completed, by route pattern, method and status code.
# TYPE http_server_requests_total counter
http_server_requests_total{code="404",method="GET",route="GET /images/{id}"} 3
http_server_requests_total{code="404",method="GET",route="unmatched"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "http_server_requests_total"); err != nil {
		t.Fatal(err)
	}
	bi := `
# HELP kubelab_build_info Always 1; its labels say which build is running.
# TYPE kubelab_build_info gauge
kubelab_build_info{goversion="go",revision="abc",service="test",version="v9"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(bi), "kubelab_build_info"); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.GatherAndLint(m.Registry); err != nil || len(problems) > 0 {
		t.Fatalf("metric lint: %v %v", err, problems)
	}
}

func TestTracingIsNoopWithoutCollector(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	shutdown, err := telemetry.SetupTracing(t.Context(), build.Current("test"))
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestTracingWithUnreachableCollectorDoesNotFail(t *testing.T) {
	// A collector that is down must cost spans, never the service.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	shutdown, err := telemetry.SetupTracing(t.Context(), build.Current("test"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 0)
	defer cancel()
	_ = shutdown(ctx) // flushing to nowhere may time out; it must return
}

// TestTracingFlushAtExitIsBounded: a collector that accepts connections
// and never answers must not hold the process's exit for the exporter's
// own 10s timeout.
func TestTracingFlushAtExitIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	shutdown, err := telemetry.SetupTracing(t.Context(), build.Current("test"))
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(t.Context(), "pending")
	span.End()
	start := time.Now()
	_ = shutdown(context.WithoutCancel(t.Context()))
	if d := time.Since(start); d > telemetry.FlushTimeout+3*time.Second {
		t.Fatalf("shutdown took %v with a silent collector, want about %v", d, telemetry.FlushTimeout)
	}
}
