package web

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/frontend/internal/auth"
	"github.com/kubelab/kubelab/services/frontend/internal/backend"
	"github.com/kubelab/kubelab/services/frontend/internal/demo"
	"github.com/kubelab/kubelab/services/frontend/internal/live"
	"github.com/kubelab/kubelab/services/frontend/internal/pod"
	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/config"
	"github.com/kubelab/kubelab/services/platform/health"
	"github.com/kubelab/kubelab/services/platform/telemetry"
)

// benchServer is a Server whose imageproc is never called.
func benchServer(b *testing.B) *Server {
	b.Helper()
	client, err := backend.Dial(backend.Options{Target: "127.0.0.1:1", Balancing: backend.PickFirst, Timeout: time.Second, StreamTimeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	checker := health.NewChecker(log, time.Hour, time.Second)
	l := &Live{Settings: live.Parse(config.Snapshot{Files: map[string]string{"title": "bench"}}, 50<<20),
		Labels: []pod.Label{{Key: "app.kubernetes.io/name", Value: "frontend"}, {Key: "pod-template-hash", Value: "5d8f"}}}
	info := build.Info{Service: "frontend", Version: "1.0.0", Instance: "frontend-bench"}
	s, err := New(Deps{Log: log, Build: info, Pod: pod.Info{Name: "frontend-bench"}, Live: func() *Live { return l },
		Backend: client, Health: checker, Metrics: telemetry.NewMetrics(info),
		Auth: auth.New(func() string { return "" }, []byte("0123456789abcdef")), Demo: demo.New(log, checker.ForceUnready), Crash: func() {}})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// discard is a ResponseWriter that keeps nothing, so allocs/op counts the
// handler's own allocations, not a recorder's.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkInfo is GET /api/v1/info, the request loadgen sends during
// every demo: the handler alone and behind the full middleware chain
// (metrics, cross-origin protection, headers, routing).
func BenchmarkInfo(b *testing.B) {
	s := benchServer(b)
	req := httptest.NewRequest(http.MethodGet, "/api/v1/info", nil)
	for _, bench := range []struct {
		name string
		h    http.Handler
	}{{"handler", http.HandlerFunc(s.apiInfo)}, {"routed", s.Handler()}} {
		b.Run(bench.name, func(b *testing.B) {
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				bench.h.ServeHTTP(w, req)
			}
		})
	}
}

// BenchmarkGalleryRender renders the gallery page with 50 photos (the
// template and the cluster panel; no imageproc call).
func BenchmarkGalleryRender(b *testing.B) {
	s := benchServer(b)
	data := &galleryPage{First: true, Next: "01J0000000000000000000050"}
	for i := range 50 {
		data.Images = append(data.Images, &imageprocv1.Image{
			Id: "01J00000000000000000000" + string(rune('A'+i%26)) + string(rune('a'+i/26)), Filename: "photo.jpg",
			ContentType: "image/jpeg", SizeBytes: 2 << 20, Width: 4000, Height: 3000, CreateTime: timestamppb.Now(),
		})
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		s.renderAnswered(w, req, http.StatusOK, "page_gallery.html", data, nil)
	}
}

// BenchmarkRelayFiftyViews: the frontend's share of 50 open live views,
// each relayed from the clusterview sidecar (a stand-in here) to a browser
// over loopback HTTP. An op is one event sent by the sidecar until all 50
// browsers have read it; heap-B/view is what each relayed view holds.
func BenchmarkRelayFiftyViews(b *testing.B) {
	const views = 50
	event := fmt.Appendf(nil, "data: {\"pad\":%q}\n\n", strings.Repeat("x", 6000))
	var mu sync.Mutex
	var streams []chan struct{}
	sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next := make(chan struct{}, 1)
		mu.Lock()
		streams = append(streams, next)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-next:
				_, _ = w.Write(event)
				w.(http.Flusher).Flush()
			}
		}
	}))
	defer sidecar.Close()
	u, _ := url.Parse(sidecar.URL)
	s := benchServer(b)
	s.liveView = s.clusterProxy(u)
	front := httptest.NewServer(s.Handler())
	defer front.Close()
	defer s.StopStreams()

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	got := make(chan struct{}, views)
	for range views {
		resp, err := http.Get(front.URL + "/cluster/stream") //nolint:bodyclose // closed by the defer below
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		go func() {
			r := bufio.NewReaderSize(resp.Body, 16<<10)
			for {
				line, err := r.ReadBytes('\n')
				if err != nil {
					return
				}
				if bytes.HasPrefix(line, []byte("data: ")) {
					got <- struct{}{}
				}
			}
		}()
	}
	for {
		mu.Lock()
		n := len(streams)
		mu.Unlock()
		if n == views {
			break
		}
		runtime.Gosched()
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, next := range streams {
			next <- struct{}{}
		}
		for range views {
			<-got
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/views, "heap-B/view")
}
