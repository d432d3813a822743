package main_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestProcessMetricsOnTheirOwnPort: the Ingress routes the public port to
// anyone, so /metrics is served on METRICS_ADDR, which only the cluster
// (Prometheus scraping the pod) reaches.
func TestProcessMetricsOnTheirOwnPort(t *testing.T) {
	s := startStack(t, 1)
	if code, _ := get(t, s.url+"/api/v1/info"); code != http.StatusOK {
		t.Fatalf("info: %d", code)
	}
	if code, body := get(t, s.url+"/metrics"); code != http.StatusNotFound || strings.Contains(body, "http_server_requests_total") {
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
		!strings.Contains(body.String(), `http_server_requests_total{code="200",method="GET",route="GET /api/v1/info"} 1`) ||
		!strings.Contains(body.String(), `kubelab_build_info{`) {
		t.Fatalf("METRICS_ADDR /metrics: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body.String())
	}
}
