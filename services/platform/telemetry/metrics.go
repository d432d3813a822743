package telemetry

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kubelab/kubelab/services/platform/build"
)

// LatencyBuckets are the upper bounds, in seconds, of every kubelab latency
// histogram (HTTP, gRPC, loadgen). A histogram only knows which bucket a
// request fell in, so a latency objective must be one of the bounds: 0.1
// and 0.25 are, which tells a 100 ms answer from a 250 ms one. The top
// bounds cover uploads and transforms of large photos (the frontend's
// stream deadline is 2m).
func LatencyBuckets() []float64 {
	return []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120}
}

// Metrics is a service's Prometheus registry and the metrics every kubelab
// service exports, under the names and labels that off-the-shelf
// dashboards and alerts look for: one HTTP histogram here, and
// go-grpc-middleware's grpc_server_* and grpc_client_* families from
// package grpcmetrics, in the same registry, for the services that speak
// gRPC (apart, so that clusterview links no gRPC). Labels only ever take
// values from a fixed set (gRPC methods and codes, route patterns, status
// codes), never from user input, so the number of series stays bounded
// however the service is used.
type Metrics struct {
	Registry *prometheus.Registry

	httpDuration *prometheus.HistogramVec
}

// NewMetrics returns a registry holding the Go runtime and process
// collectors, kubelab_build_info, and the HTTP metrics.
func NewMetrics(info build.Info) *Metrics {
	reg := prometheus.NewRegistry()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "kubelab_build_info",
		Help:        "Always 1; its labels say which build is running.",
		ConstLabels: prometheus.Labels{"service": info.Service, "version": info.Version, "revision": info.Revision, "goversion": info.GoVersion},
	})
	buildInfo.Set(1)
	m := &Metrics{
		Registry: reg,
		// One histogram, not a counter beside it: its _count is the
		// request count, by the same labels.
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_server_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern, method and status code; _count counts the requests.",
			Buckets: LatencyBuckets(),
		}, []string{"route", "method", "code"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo, m.httpDuration,
	)
	return m
}

// Handler serves the registry at /metrics. Registry in the options adds
// promhttp's own count of failed scrapes to it.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Middleware records HTTP requests by the ServeMux pattern that matched
// (e.g. "GET /images/{id}"), never by the raw path; unmatched requests are
// counted under "unmatched". ServeMux writes the pattern into the request
// it was handed, so nothing between this middleware and the mux may
// replace the request (r.WithContext makes a copy this one never sees).
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		m.httpDuration.WithLabelValues(route, method(r.Method), strconv.Itoa(rec.code)).Observe(time.Since(start).Seconds())
	})
}

// method bounds the method label: a client may send any token as its
// method, and each would be a new series.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
