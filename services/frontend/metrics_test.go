package main_test

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/kubelab/kubelab/services/platform/proctest"
)

// TestProcessMetricsOnTheirOwnPort: the Ingress routes the public port to
// anyone, so /metrics is served on METRICS_ADDR, which only the cluster
// (Prometheus scraping the pod) reaches.
func TestProcessMetricsOnTheirOwnPort(t *testing.T) {
	s := startStack(t, 1)
	if code, _ := get(t, s.url+"/api/v1/info"); code != http.StatusOK {
		t.Fatalf("info: %d", code)
	}
	if code, body := get(t, s.url+"/metrics"); code != http.StatusNotFound || strings.Contains(body, "http_server_request_duration_seconds") {
		t.Fatalf("/metrics on the public port: %d\n%s", code, body)
	}

	resp, err := http.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	if _, err := io.Copy(&body, resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(body.String(), `http_server_request_duration_seconds_count{code="200",method="GET",route="GET /api/v1/info"} 1`) ||
		!strings.Contains(body.String(), `kubelab_build_info{`) {
		t.Fatalf("METRICS_ADDR /metrics: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body.String())
	}
}

// TestProcessMetricsPassLint scrapes every kubelab binary while it works
// and lints what it serves as Prometheus does its own: counters end in
// _total, units are base units named in the suffix, every metric has
// help. Each also carries kubelab_build_info and the Go and process
// collectors, and the metric that says it is doing its job.
func TestProcessMetricsPassLint(t *testing.T) {
	s := startStack(t, 1)
	if code, _ := get(t, s.url+"/api/v1/images"); code != http.StatusOK {
		t.Fatalf("images: %d", code)
	}

	// Every binary is built before any starts: a cold build of one
	// (clusterview's, when it linked client-go) took longer than the
	// worker waits.
	loadgenBin := proctest.Build(t, "github.com/kubelab/kubelab/services/loadgen")
	workerBin := proctest.Build(t, "github.com/kubelab/kubelab/services/worker")
	clusterviewBin := proctest.Build(t, "github.com/kubelab/kubelab/services/clusterview")

	loadgenAddr := proctest.FreeAddr(t)
	loadgen := proctest.Start(t, "loadgen", loadgenBin, []string{
		"--target", s.url, "--rate", "20", "--duration", "0", "--metrics-addr", loadgenAddr, "--quiet", "--max-errors", "-1",
	})
	// A worker whose imageproc is away keeps trying, and counts its
	// failed calls, for IMAGEPROC_WAIT: longer than the subtests before
	// its own may wait (20s each); the test stops it at the end.
	workerAddr := proctest.FreeAddr(t)
	worker := proctest.Start(t, "worker", workerBin, nil,
		"IMAGEPROC_ADDR="+proctest.FreeAddr(t), "IMAGEPROC_BALANCING=pick_first", "IMAGEPROC_WAIT=5m",
		"METRICS_ADDR="+workerAddr, "POD_NAME=worker-lint", "LOG_LEVEL=info")
	// Outside a cluster clusterview has nothing to watch, and serves.
	clusterviewAddr := proctest.FreeAddr(t)
	clusterview := proctest.Start(t, "clusterview", clusterviewBin, nil,
		"HTTP_ADDR="+clusterviewAddr, "POD_NAMESPACE=kubelab", "POD_NAME=frontend-lint")

	tests := []struct {
		name    string
		proc    *proctest.Proc
		url     string
		working string // a series that shows the binary at work
	}{
		{"frontend", s.frontend, "http://" + s.metrics + "/metrics", `grpc_client_handled_total{grpc_code="OK",grpc_method="ListImages"`},
		{"imageproc", s.imageproc[0], "http://" + s.admin[0] + "/metrics", `grpc_server_handled_total{grpc_code="OK",grpc_method="ListImages"`},
		{"loadgen", loadgen, "http://" + loadgenAddr + "/metrics", `loadgen_answers_total{pod="frontend-proc-0"`},
		{"worker", worker, "http://" + workerAddr + "/metrics", `grpc_client_handled_total{grpc_code="Unavailable",grpc_method="ClaimTasks"`},
		{"clusterview", clusterview, "http://" + clusterviewAddr + "/metrics", `kubelab_build_info{`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body string
			proctest.WaitFor(t, tt.name+" at work", 20*time.Second, func() bool {
				body = scrape(tt.url)
				return strings.Contains(body, tt.working)
			})
			for _, want := range []string{`kubelab_build_info{goversion="go`, "go_goroutines ", "process_cpu_seconds_total "} {
				if !strings.Contains(body, want) {
					t.Errorf("%s /metrics lacks %s", tt.name, want)
				}
			}
			problems, err := promlint.New(strings.NewReader(body)).Lint()
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("%s: %s: %s", tt.name, p.Metric, p.Text)
			}
		})
	}
	for _, p := range []*proctest.Proc{loadgen, worker, clusterview} {
		p.Signal(t, syscall.SIGTERM)
	}
}

func scrape(url string) string {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
