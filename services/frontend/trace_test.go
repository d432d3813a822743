package main_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/kubelab/kubelab/services/imageproc/imageproctest"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
	"github.com/kubelab/kubelab/services/platform/pgtest"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

// collector is an OTLP trace receiver, the service a real OpenTelemetry
// Collector offers on :4317: it keeps every span it is sent.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []span
}

// span is an exported span with its process's resource.
type span struct {
	resource map[string]string
	*tracepb.Span
}

func (s span) service() string { return s.resource["service.name"] }

func (s span) attr(key string) string { return attrs(s.GetAttributes())[key] }

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	return m
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				c.spans = append(c.spans, span{res, sp})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) received() []span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]span(nil), c.spans...)
}

// startCollector serves OTLP/gRPC on a loopback port until the test ends
// and returns the endpoint to give the services.
func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range c.received() {
				t.Logf("received %s span %q of %s: trace %x span %x parent %x", s.GetKind(), s.GetName(), s.service(), s.GetTraceId(), s.GetSpanId(), s.GetParentSpanId())
			}
		}
	})
	return c, "http://" + lis.Addr().String()
}

// traced is the frontend and imageproc, on PostgreSQL, exporting their
// spans to a collector.
type traced struct {
	spans     *collector
	otel      []string // the services' OTEL_* environment
	frontend  string   // its base URL
	imageproc string   // its gRPC address
}

func startTraced(t *testing.T) *traced {
	t.Helper()
	db := pgtest.Start(t).URL(t, "traces")
	migrate := exec.CommandContext(t.Context(), proctest.Build(t, "github.com/kubelab/kubelab/services/imageproc"), "migrate")
	migrate.Env = append(migrate.Environ(), "DATABASE_URL="+db)
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	spans, endpoint := startCollector(t)
	s := &traced{spans: spans, otel: []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		// Export within 50ms rather than 5s: the test polls for the spans.
		"OTEL_BSP_SCHEDULE_DELAY=50",
	}}
	backend := imageproctest.Start(t, "imageproc-0", "", append(s.otel, "DATABASE_URL="+db,
		"OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=proctest")...)
	s.imageproc = backend.Addr
	addr := proctest.FreeAddr(t)
	s.frontend = "http://" + addr
	proctest.Start(t, "frontend", proctest.Build(t, "."), nil, append(s.otel,
		"HTTP_ADDR="+addr, "METRICS_ADDR=", "IMAGEPROC_ADDR="+backend.Addr, "IMAGEPROC_BALANCING=pick_first", "POD_NAME=frontend-0",
		// OTEL_SERVICE_NAME wins over the service.name of the attributes,
		// and both over the build's "frontend".
		"OTEL_SERVICE_NAME=photo-frontend", "OTEL_RESOURCE_ATTRIBUTES=service.name=not-this,deployment.environment.name=proctest")...)
	proctest.WaitFor(t, "frontend ready", 20*time.Second, func() bool { return proctest.Status(s.frontend+"/readyz") == http.StatusOK })
	return s
}

func (s *traced) upload(t *testing.T, filename string) {
	t.Helper()
	resp, err := http.Post(s.frontend+"/api/v1/images?filename="+filename, "image/jpeg", bytes.NewReader(pipelinetest.JPEG(64, 48, 1))) //nolint:noctx // test
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %s", resp.Status)
	}
}

// TestProcessUploadIsOneTrace uploads a photo through the frontend's API
// and follows its trace through the collector: the frontend's HTTP server
// span, its gRPC client span, imageproc's gRPC server span, and the
// PostgreSQL statements that stored the photo, each the child of the one
// before, with each process named as the OpenTelemetry environment says.
func TestProcessUploadIsOneTrace(t *testing.T) {
	s := startTraced(t)
	spans := s.spans
	s.upload(t, "traced.jpg")
	var chain []span // HTTP server, gRPC client, gRPC server, query
	proctest.WaitFor(t, "the upload's spans at the collector", 20*time.Second, func() bool {
		chain = callChain(spans.received(), "POST /api/v1/images", "imageproc.v1.ImageService/Upload")
		return len(chain) == 4
	})
	httpSpan, client, server, query := chain[0], chain[1], chain[2], chain[3]
	t.Logf("trace %s: %q → %q → %q → %q", hex.EncodeToString(httpSpan.GetTraceId()), httpSpan.GetName(), client.GetName(), server.GetName(), query.GetName())
	if len(httpSpan.GetParentSpanId()) != 0 {
		t.Errorf("the HTTP server span has a parent: the upload is not a trace of its own")
	}
	for _, c := range []struct {
		span    span
		kind    tracepb.Span_SpanKind
		service string
	}{
		{httpSpan, tracepb.Span_SPAN_KIND_SERVER, "photo-frontend"},
		{client, tracepb.Span_SPAN_KIND_CLIENT, "photo-frontend"},
		{server, tracepb.Span_SPAN_KIND_SERVER, "imageproc"},
		{query, tracepb.Span_SPAN_KIND_CLIENT, "imageproc"},
	} {
		if c.span.GetKind() != c.kind || c.span.service() != c.service || c.span.resource["deployment.environment.name"] != "proctest" {
			t.Errorf("span %q: kind %v, resource %v; want %v, service.name %s, deployment.environment.name proctest",
				c.span.GetName(), c.span.GetKind(), c.span.resource, c.kind, c.service)
		}
	}
	if got := query.attr("db.query.text"); got == "" || query.attr("db.operation.name") == "" {
		t.Errorf("query span %q: db.query.text %q, db.operation.name %q; want both", query.GetName(), got, query.attr("db.operation.name"))
	}
	if bytes.Contains([]byte(query.attr("db.query.text")), []byte("traced.jpg")) {
		t.Errorf("db.query.text holds an argument: %s", query.attr("db.query.text"))
	}
}

// callChain finds, among spans, the frontend's server span named route
// and its descendants down to a PostgreSQL statement: the gRPC client span
// of method, imageproc's server span of it, a statement. It returns as
// much of the chain as it found.
func callChain(spans []span, route, method string) []span {
	children := map[string][]span{}
	for _, s := range spans {
		children[string(s.GetParentSpanId())] = append(children[string(s.GetParentSpanId())], s)
	}
	child := func(parent span, ok func(span) bool) (span, bool) {
		for _, c := range children[string(parent.GetSpanId())] {
			if bytes.Equal(c.GetTraceId(), parent.GetTraceId()) && ok(c) {
				return c, true
			}
		}
		return span{}, false
	}
	var longest []span
	for _, root := range spans {
		if root.GetName() != route {
			continue
		}
		chain := []span{root}
		for _, ok := range []func(span) bool{
			func(s span) bool { return s.GetName() == method && s.GetKind() == tracepb.Span_SPAN_KIND_CLIENT },
			func(s span) bool { return s.GetName() == method && s.GetKind() == tracepb.Span_SPAN_KIND_SERVER },
			func(s span) bool { return s.attr("db.system.name") == "postgresql" },
		} {
			next, found := child(chain[len(chain)-1], ok)
			if !found {
				break
			}
			chain = append(chain, next)
		}
		if len(chain) > len(longest) {
			longest = chain
		}
	}
	return longest
}

// TestProcessTaskTraceLinksToItsBatch submits a batch through the frontend
// and runs the worker: each task is a trace of its own, in the worker's
// name, linked to imageproc's SubmitBatch span of the batch's trace, with
// the task's calls to imageproc as children.
func TestProcessTaskTraceLinksToItsBatch(t *testing.T) {
	s := startTraced(t)
	s.upload(t, "batched.jpg")
	resp, err := http.Post(s.frontend+"/api/v1/batches", "application/json", //nolint:noctx // test
		bytes.NewReader([]byte(`{"operations":[{"thumbnail":{"size":32}}]}`)))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("submit batch: %s", resp.Status)
	}
	worker := proctest.Start(t, "worker", proctest.Build(t, "github.com/kubelab/kubelab/services/worker"), nil, append(s.otel,
		"IMAGEPROC_ADDR="+s.imageproc, "IMAGEPROC_BALANCING=pick_first", "METRICS_ADDR=", "POD_NAME=worker-0")...)
	if code := worker.Wait(t, time.Minute); code != 0 {
		t.Fatalf("worker exited %d", code)
	}

	var batch []span
	var task, download span
	proctest.WaitFor(t, "the batch's and the task's spans at the collector", 20*time.Second, func() bool {
		spans := s.spans.received()
		if batch = callChain(spans, "POST /api/v1/batches", "imageproc.v1.QueueService/SubmitBatch"); len(batch) < 3 {
			return false
		}
		for _, sp := range spans {
			if sp.GetName() == "process task" {
				task = sp
			}
		}
		for _, sp := range spans {
			if task.Span != nil && bytes.Equal(sp.GetParentSpanId(), task.GetSpanId()) && sp.GetName() == "imageproc.v1.ImageService/Download" {
				download = sp
			}
		}
		return task.Span != nil && download.Span != nil
	})
	submit := batch[2] // imageproc's SubmitBatch server span
	if task.service() != "worker" || task.GetKind() != tracepb.Span_SPAN_KIND_CONSUMER {
		t.Errorf("task span of service %q, kind %v; want worker, consumer", task.service(), task.GetKind())
	}
	if len(task.GetParentSpanId()) != 0 || bytes.Equal(task.GetTraceId(), submit.GetTraceId()) {
		t.Errorf("the task's span is not the root of a trace of its own")
	}
	links := task.GetLinks()
	if len(links) != 1 || !bytes.Equal(links[0].GetTraceId(), submit.GetTraceId()) || !bytes.Equal(links[0].GetSpanId(), submit.GetSpanId()) {
		t.Errorf("task links %v, want one to SubmitBatch's span %x/%x", links, submit.GetTraceId(), submit.GetSpanId())
	}
	if !bytes.Equal(download.GetTraceId(), task.GetTraceId()) || download.service() != "worker" {
		t.Errorf("the task's Download call is not in its trace")
	}
}
