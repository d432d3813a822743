// Package stats counts what loadgen saw: answers by version and by pod,
// failures by kind and latency percentiles, per interval (the live table)
// and in total (the summary tests read).
package stats

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubelab/kubelab/services/platform/telemetry"
)

// Outcome is one request's result.
type Outcome struct {
	Latency time.Duration
	// Version and Pod name who answered (X-Version and X-Served-By, or the
	// gRPC headers); Backend is the imageproc pod behind the frontend.
	Version, Pod, Backend string
	// Failure is empty for a success, else its kind: "timeout",
	// "connection", "http 503", "Unavailable", ...
	Failure string
	// Code is the answer's status: an HTTP status code ("200") or a gRPC
	// code ("OK"); empty when no answer came.
	Code string
}

type window struct {
	ok, failed                         int
	versions, pods, backends, failures map[string]int
	latency                            Histogram
}

func newWindow() *window {
	return &window{versions: map[string]int{}, pods: map[string]int{}, backends: map[string]int{}, failures: map[string]int{}}
}

func (w *window) add(o Outcome) {
	w.latency.Record(o.Latency)
	if o.Failure != "" {
		w.failed++
		w.failures[o.Failure]++
		return
	}
	w.ok++
	w.versions[o.Version]++
	w.pods[o.Pod]++
	if o.Backend != "" {
		w.backends[o.Backend]++
	}
}

// Recorder collects outcomes from many goroutines.
type Recorder struct {
	mu        sync.Mutex
	start     time.Time
	total     *window
	current   *window
	intervals []Interval
	metrics   *Metrics
}

// NewRecorder starts counting now. metrics may be nil.
func NewRecorder(metrics *Metrics) *Recorder {
	return &Recorder{start: time.Now(), total: newWindow(), current: newWindow(), metrics: metrics}
}

// Record adds one outcome.
func (r *Recorder) Record(o Outcome) {
	r.mu.Lock()
	r.total.add(o)
	r.current.add(o)
	r.mu.Unlock()
	r.metrics.observe(o)
}

// Latency is a set of percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func latencyOf(h *Histogram) Latency {
	return Latency{P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)), P99: ms(h.Quantile(0.99)), Max: ms(h.Max())}
}

// Interval is one line of the live table.
type Interval struct {
	// At is the end of the interval, in seconds since the start.
	At       float64        `json:"at_s"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Versions map[string]int `json:"versions,omitempty"`
	Pods     map[string]int `json:"pods,omitempty"`
	Backends map[string]int `json:"backends,omitempty"`
	Failures map[string]int `json:"failures,omitempty"`
	Latency  Latency        `json:"latency"`
}

// Tick closes the current interval and returns it.
func (r *Recorder) Tick() Interval {
	iv, _ := r.tick(true)
	return iv
}

// Last closes the final interval, which may be only a sliver of one: it
// is kept only if anything happened in it.
func (r *Recorder) Last() (Interval, bool) { return r.tick(false) }

func (r *Recorder) tick(keepEmpty bool) (Interval, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.current
	if !keepEmpty && w.ok+w.failed == 0 {
		return Interval{}, false
	}
	r.current = newWindow()
	iv := Interval{
		At: time.Since(r.start).Round(time.Millisecond).Seconds(), OK: w.ok, Failed: w.failed,
		Versions: w.versions, Pods: w.pods, Backends: w.backends, Failures: w.failures, Latency: latencyOf(&w.latency),
	}
	r.intervals = append(r.intervals, iv)
	return iv, true
}

// Summary is the whole run, written by --json.
type Summary struct {
	Target    string         `json:"target"`
	Seconds   float64        `json:"seconds"`
	Sent      int            `json:"sent"`
	OK        int            `json:"ok"`
	Failed    int            `json:"failed"`
	Rate      float64        `json:"achieved_rate"`
	Versions  map[string]int `json:"versions"`
	Pods      map[string]int `json:"pods"`
	Backends  map[string]int `json:"backends,omitempty"`
	Failures  map[string]int `json:"failures"`
	Latency   Latency        `json:"latency"`
	Intervals []Interval     `json:"intervals"`
}

// Summary returns the totals so far.
func (r *Recorder) Summary(target string) Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	secs := time.Since(r.start).Seconds()
	w := r.total
	return Summary{
		Target: target, Seconds: secs, Sent: w.ok + w.failed, OK: w.ok, Failed: w.failed,
		Rate:     float64(w.ok+w.failed) / secs,
		Versions: maps.Clone(w.versions), Pods: maps.Clone(w.pods), Backends: maps.Clone(w.backends), Failures: maps.Clone(w.failures),
		Latency: latencyOf(&w.latency), Intervals: slices.Clone(r.intervals),
	}
}

// Header is the live table's heading.
const Header = "   time      ok  fail     p50     p90     p99  answered by"

// Line formats an interval for the live table: counts, latency, then who
// answered (versions, pods, and imageproc pods when the frontend says) and
// what failed.
func (iv Interval) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6.0fs %7d %5d %7s %7s %7s ", iv.At, iv.OK, iv.Failed,
		short(iv.Latency.P50), short(iv.Latency.P90), short(iv.Latency.P99))
	b.WriteString(" v:" + counts(iv.Versions))
	b.WriteString("  pods:" + counts(iv.Pods))
	if len(iv.Backends) > 0 {
		b.WriteString("  imageproc:" + counts(iv.Backends))
	}
	if len(iv.Failures) > 0 {
		b.WriteString("  FAILED:" + counts(iv.Failures))
	}
	return b.String()
}

func short(msv float64) string {
	if msv >= 1000 {
		return fmt.Sprintf("%.2fs", msv/1000)
	}
	return fmt.Sprintf("%.1fms", msv)
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return " -"
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, " %s=%d", k, m[k])
	}
	return b.String()
}

// Metrics exposes the same counts to Prometheus when loadgen runs as a
// Deployment or a DaemonSet, for days. Versions and pods are labels, and
// every rollout brings new pod names: a counter per pod ever seen would
// grow without end. answers forgets the pods it has not heard from.
type Metrics struct {
	answers  *answerCounts
	failures *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// How answers stays bounded: a version and pod that answered nothing for
// ForgetAfter leaves /metrics (Prometheus marks the series stale, as it
// does a deleted pod's), and past MaxPodSeries at once, further pods are
// counted as pod="other", by version. ForgetAfter spans a rollout, so
// its graphs stay whole while old pods drain.
const (
	ForgetAfter  = 10 * time.Minute
	MaxPodSeries = 50
	OtherPod     = "other"
)

// NewMetrics registers loadgen's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return newMetrics(reg, time.Now, ForgetAfter, MaxPodSeries)
}

func newMetrics(reg prometheus.Registerer, now func() time.Time, forget time.Duration, maxSeries int) *Metrics {
	m := &Metrics{
		answers: &answerCounts{
			desc: prometheus.NewDesc("loadgen_answers_total",
				fmt.Sprintf("Successful requests, by the version and pod that answered; a version and pod silent for %s are dropped.", forget),
				[]string{"version", "pod"}, nil),
			now: now, forget: forget, max: maxSeries, series: map[answerKey]*answerCount{},
		},
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loadgen_failures_total", Help: "Failed requests, by kind.",
		}, []string{"kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "loadgen_request_duration_seconds",
			Help: "Request latency from the scheduled send time, by the answer's status (HTTP status code or gRPC code; none without an answer).",
			// The same bounds as the servers' histograms, so the two
			// sides of a request compare bucket by bucket.
			Buckets: telemetry.LatencyBuckets(),
		}, []string{"code"}),
	}
	reg.MustRegister(m.answers, m.failures, m.latency)
	return m
}

func (m *Metrics) observe(o Outcome) {
	if m == nil {
		return
	}
	code := o.Code
	if code == "" {
		code = "none"
	}
	m.latency.WithLabelValues(code).Observe(o.Latency.Seconds())
	if o.Failure != "" {
		m.failures.WithLabelValues(o.Failure).Inc()
		return
	}
	m.answers.add(o.Version, o.Pod)
}

// answerCounts is loadgen_answers_total: a collector of its own, since a
// CounterVec never forgets a series.
type answerCounts struct {
	desc   *prometheus.Desc
	now    func() time.Time
	forget time.Duration
	max    int

	mu     sync.Mutex
	series map[answerKey]*answerCount
}

type answerKey struct{ version, pod string }

type answerCount struct {
	n    float64
	last time.Time // the last answer counted
}

func (a *answerCounts) add(version, pod string) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expire(now)
	k := answerKey{version, pod}
	c, ok := a.series[k]
	if !ok && len(a.series) >= a.max {
		k.pod = OtherPod
		c, ok = a.series[k]
	}
	if !ok {
		c = &answerCount{}
		a.series[k] = c
	}
	c.n++
	c.last = now
}

// expire drops the series silent for longer than forget. Called with mu.
func (a *answerCounts) expire(now time.Time) {
	for k, c := range a.series {
		if now.Sub(c.last) > a.forget {
			delete(a.series, k)
		}
	}
}

func (a *answerCounts) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

func (a *answerCounts) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expire(a.now())
	for k, c := range a.series {
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.CounterValue, c.n, k.version, k.pod)
	}
}
