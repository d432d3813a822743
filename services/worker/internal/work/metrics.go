package work

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are what a worker exposes on /metrics while it runs: a Job's
// progress, scraped or port-forwarded.
type Metrics struct {
	tasks    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	open     prometheus.Gauge
}

// NewMetrics registers the worker's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "worker_tasks_total", Help: "Tasks handled, by outcome (done, failed, retried, released, lost).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "worker_task_duration_seconds", Help: "Time from starting a task to its outcome.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}, []string{"outcome"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "worker_queue_open_tasks", Help: "Tasks in this worker's shard still pending or leased, at the last claim.",
		}),
	}
	reg.MustRegister(m.tasks, m.duration, m.open)
	return m
}

func (m *Metrics) observe(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.tasks.WithLabelValues(outcome).Inc()
	m.duration.WithLabelValues(outcome).Observe(d.Seconds())
}

func (m *Metrics) setOpen(n int32) {
	if m != nil {
		m.open.Set(float64(n))
	}
}
