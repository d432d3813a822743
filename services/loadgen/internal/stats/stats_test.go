package stats

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRecorderIntervalsAndTotals(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	r := NewRecorder(m)
	r.Record(Outcome{Latency: time.Millisecond, Version: "1.0", Pod: "a"})
	r.Record(Outcome{Latency: 2 * time.Millisecond, Version: "1.0", Pod: "b", Backend: "x"})
	first := r.Tick()
	r.Record(Outcome{Latency: 3 * time.Millisecond, Version: "2.0", Pod: "c"})
	r.Record(Outcome{Latency: time.Second, Failure: "timeout"})
	second := r.Tick()

	if first.OK != 2 || first.Failed != 0 || first.Versions["1.0"] != 2 || first.Backends["x"] != 1 {
		t.Fatalf("first interval %+v", first)
	}
	if second.OK != 1 || second.Failed != 1 || second.Versions["2.0"] != 1 || second.Versions["1.0"] != 0 || second.Failures["timeout"] != 1 {
		t.Fatalf("second interval %+v", second)
	}
	s := r.Summary("http://x")
	if s.Sent != 4 || s.OK != 3 || s.Failed != 1 || s.Pods["a"] != 1 || len(s.Intervals) != 2 || s.Latency.Max != 1000 {
		t.Fatalf("summary %+v", s)
	}
	line := second.Line()
	for _, want := range []string{"v: 2.0=1", "pods: c=1", "FAILED: timeout=1"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if got := testutil.ToFloat64(m.answers.WithLabelValues("1.0", "a")); got != 1 {
		t.Errorf("answers metric = %v", got)
	}
	if got := testutil.ToFloat64(m.failures.WithLabelValues("timeout")); got != 1 {
		t.Errorf("failures metric = %v", got)
	}
}
