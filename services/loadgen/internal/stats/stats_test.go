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
	want := `
# HELP loadgen_answers_total Successful requests, by the version and pod that answered; a version and pod silent for 10m0s are dropped.
# TYPE loadgen_answers_total counter
loadgen_answers_total{pod="a",version="1.0"} 1
loadgen_answers_total{pod="b",version="1.0"} 1
loadgen_answers_total{pod="c",version="2.0"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "loadgen_answers_total"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(m.failures.WithLabelValues("timeout")); got != 1 {
		t.Errorf("failures metric = %v", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", err, problems)
	}
}

// TestAnswersStayBounded: pods come and go on every rollout, and loadgen
// runs for days; the series of loadgen_answers_total must not pile up.
func TestAnswersStayBounded(t *testing.T) {
	type answer struct {
		after        time.Duration // since the previous answer
		version, pod string
	}
	tests := []struct {
		name    string
		answers []answer
		scrape  time.Duration // after the last answer
		want    string
	}{{
		name:    "pods of a finished rollout are forgotten",
		answers: []answer{{0, "1.0", "old-a"}, {0, "1.0", "old-b"}, {time.Minute, "2.0", "new-a"}, {9 * time.Minute, "2.0", "new-a"}},
		scrape:  2 * time.Minute,
		want:    `loadgen_answers_total{pod="new-a",version="2.0"} 2`,
	}, {
		name:    "a pod that answers is kept however old its series",
		answers: []answer{{0, "1.0", "a"}, {9 * time.Minute, "1.0", "a"}, {9 * time.Minute, "1.0", "a"}},
		scrape:  9 * time.Minute,
		want:    `loadgen_answers_total{pod="a",version="1.0"} 3`,
	}, {
		name:    "past the cap, pods are counted as other, by version",
		answers: []answer{{0, "1.0", "a"}, {0, "1.0", "b"}, {0, "1.0", "c"}, {0, "1.0", "d"}, {0, "2.0", "e"}, {0, "1.0", "a"}, {0, "2.0", "f"}},
		want: `loadgen_answers_total{pod="a",version="1.0"} 2
loadgen_answers_total{pod="b",version="1.0"} 1
loadgen_answers_total{pod="c",version="1.0"} 1
loadgen_answers_total{pod="other",version="1.0"} 1
loadgen_answers_total{pod="other",version="2.0"} 2`,
	}, {
		name:    "a forgotten series frees its place under the cap",
		answers: []answer{{0, "1.0", "a"}, {0, "1.0", "b"}, {0, "1.0", "c"}, {11 * time.Minute, "2.0", "d"}, {0, "2.0", "e"}, {0, "2.0", "f"}},
		want: `loadgen_answers_total{pod="d",version="2.0"} 1
loadgen_answers_total{pod="e",version="2.0"} 1
loadgen_answers_total{pod="f",version="2.0"} 1`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			reg := prometheus.NewRegistry()
			m := newMetrics(reg, func() time.Time { return now }, 10*time.Minute, 3)
			for _, a := range tt.answers {
				now = now.Add(a.after)
				m.observe(Outcome{Version: a.version, Pod: a.pod, Code: "200"})
			}
			now = now.Add(tt.scrape)
			want := "# HELP loadgen_answers_total Successful requests, by the version and pod that answered; a version and pod silent for 10m0s are dropped.\n" +
				"# TYPE loadgen_answers_total counter\n" + tt.want + "\n"
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "loadgen_answers_total"); err != nil {
				t.Error(err)
			}
		})
	}
}
