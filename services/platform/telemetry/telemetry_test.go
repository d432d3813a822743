package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/grpcmetrics"
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

// TestGRPCLogsAreJSON comes before any test that starts gRPC: gRPC reads
// its logger without a lock, so it is swapped while nothing of gRPC runs.
func TestGRPCLogsAreJSON(t *testing.T) {
	var buf bytes.Buffer
	log, err := telemetry.NewLogger(&buf, "debug", "service", "test")
	if err != nil {
		t.Fatal(err)
	}
	// Both are the process's: put back what the other tests expect.
	prev := slog.Default()
	t.Cleanup(func() {
		slog.SetDefault(prev)
		grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, os.Stderr))
	})
	telemetry.SetDefault(log)
	grpclog.Component("core").Warningf("a %s of gRPC's own", "warning")
	grpclog.Component("core").Infof("an info line")
	grpclog.Error("an error\n")
	var levels []string
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var rec struct{ Level, Msg, Logger, Service string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if rec.Logger != "grpc" || rec.Service != "test" || strings.HasSuffix(rec.Msg, "\n") {
			t.Errorf("record %+v", rec)
		}
		levels = append(levels, rec.Level)
	}
	if want := []string{"WARN", "DEBUG", "ERROR"}; !slices.Equal(levels, want) {
		t.Errorf("levels %v, want %v", levels, want)
	}
}

func TestHTTPMetricsUseRoutePatterns(t *testing.T) {
	m := telemetry.NewMetrics(build.Info{Service: "test", Version: "v9", Revision: "abc", GoVersion: "go"})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /images/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })
	h := m.Middleware(mux)
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/images/a"}, {http.MethodGet, "/images/b"}, {http.MethodGet, "/images/c"},
		{http.MethodGet, "/nowhere"}, {"BREW", "/nowhere"}, {"PROPFIND", "/nowhere"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.path, nil))
	}
	for _, tt := range []struct {
		labels prometheus.Labels
		want   uint64
	}{
		{prometheus.Labels{"route": "GET /images/{id}", "method": "GET", "code": "404"}, 3},
		{prometheus.Labels{"route": "unmatched", "method": "GET", "code": "404"}, 1},
		// Methods are the client's to choose: unknown ones share a series.
		{prometheus.Labels{"route": "unmatched", "method": "other", "code": "404"}, 2},
	} {
		if got := histogramCount(t, m.Registry, "http_server_request_duration_seconds", tt.labels); got != tt.want {
			t.Errorf("requests %v = %d, want %d", tt.labels, got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(m.Registry, "http_server_request_duration_seconds"); n != 3 {
		t.Errorf("%d HTTP series, want 3", n)
	}
	bi := `
# HELP kubelab_build_info Always 1; its labels say which build is running.
# TYPE kubelab_build_info gauge
kubelab_build_info{goversion="go",revision="abc",service="test",version="v9"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(bi), "kubelab_build_info"); err != nil {
		t.Fatal(err)
	}
}

// TestGRPCMetricsHaveTheStandardShape: dashboards and alerts written for
// go-grpc-middleware find kubelab's RPCs on both sides, and the handling
// time histogram tells 100 ms from 250 ms.
func TestGRPCMetricsHaveTheStandardShape(t *testing.T) {
	reg := telemetry.NewMetrics(build.Current("test")).Registry
	m := grpcmetrics.New(reg)
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(m.UnaryServerInterceptor()), grpc.ChainStreamInterceptor(m.StreamServerInterceptor()))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	m.Server.InitializeMetrics(srv)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		append(m.DialOptions(),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "nothing"}); status.Code(err) != codes.NotFound {
		t.Fatalf("check of an unknown service: %v", err)
	}

	check := prometheus.Labels{"grpc_service": "grpc.health.v1.Health", "grpc_method": "Check", "grpc_type": "unary"}
	for _, tt := range []struct {
		name string
		code string
		want float64
	}{
		{"grpc_server_handled_total", "OK", 1},
		{"grpc_server_handled_total", "NotFound", 1},
		{"grpc_server_handled_total", "Unavailable", 0}, // there from the start
		{"grpc_client_handled_total", "OK", 1},
		{"grpc_client_handled_total", "NotFound", 1},
	} {
		labels := prometheus.Labels{"grpc_code": tt.code}
		maps.Copy(labels, check)
		if got := counterValue(t, reg, tt.name, labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, labels, got, tt.want)
		}
	}
	for _, name := range []string{"grpc_server_handling_seconds", "grpc_client_handling_seconds"} {
		h := histogram(t, reg, name, check)
		if h.GetSampleCount() != 2 {
			t.Errorf("%s count = %d, want 2", name, h.GetSampleCount())
		}
		var bounds []float64
		for _, b := range h.GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		if !slices.Contains(bounds, 0.1) || !slices.Contains(bounds, 0.25) {
			t.Errorf("%s buckets %v cannot tell 100ms from 250ms", name, bounds)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("metric lint: %v %v", err, problems)
	}
}

// find returns the series of family name whose labels include want.
func find(t *testing.T, reg prometheus.Gatherer, name string, want prometheus.Labels) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			return m
		}
	}
	t.Fatalf("no %s series with %v", name, want)
	return nil
}

func counterValue(t *testing.T, reg prometheus.Gatherer, name string, labels prometheus.Labels) float64 {
	return find(t, reg, name, labels).GetCounter().GetValue()
}

func histogram(t *testing.T, reg prometheus.Gatherer, name string, labels prometheus.Labels) *dto.Histogram {
	return find(t, reg, name, labels).GetHistogram()
}

func histogramCount(t *testing.T, reg prometheus.Gatherer, name string, labels prometheus.Labels) uint64 {
	return histogram(t, reg, name, labels).GetSampleCount()
}
