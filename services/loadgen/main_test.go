package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kubelab/kubelab/services/imageproc/imageproctest"
	"github.com/kubelab/kubelab/services/loadgen/internal/stats"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

func TestParseRejectsBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--mode", "udp"}, "--mode"},
		{[]string{"--balancing", "random"}, "--balancing"},
		{[]string{"--rate", "-1"}, "--rate"},
		{[]string{"--duration", "0s"}, "--metrics-addr"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--target", "127.0.0.1:8080"}, "URL"},
		{[]string{"extra"}, "unexpected"},
	}
	for _, tt := range tests {
		_, err := parse(tt.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parse(%q) = %v, want an error mentioning %s", tt.args, err, tt.want)
		}
	}
	if _, err := parse([]string{"--duration", "0", "--metrics-addr", ":9100"}, &bytes.Buffer{}); err != nil {
		t.Errorf("the Deployment's flags were refused: %v", err)
	}
}

// fakeFrontend answers like frontend pods: two "pods" at two versions,
// failing every tenth request when failing is set.
func fakeFrontend(t *testing.T, failing *atomic.Bool) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		i := n.Add(1)
		w.Header().Set("X-Served-By", fmt.Sprintf("frontend-%d", i%2))
		w.Header().Set("X-Version", fmt.Sprintf("1.%d", i%2))
		w.Header().Set("X-Backend-Served-By", "imageproc-0")
		if failing.Load() && i%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRunCountsAnswersAndSetsTheExitStatus(t *testing.T) {
	var failing atomic.Bool
	srv := fakeFrontend(t, &failing)
	out := filepath.Join(t.TempDir(), "sum.json")
	o, err := parse([]string{"--target", srv.URL, "--rate", "200", "--duration", "1s", "--json", out, "--interval", "250ms"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	code, err := run(t.Context(), o, &bytes.Buffer{}, &table)
	if code != 0 || err != nil {
		t.Fatalf("clean run: %d %v", code, err)
	}
	var sum stats.Summary
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	// 200/s for 1s: about 200 requests, all answered by both pods.
	if sum.OK < 150 || sum.OK > 201 || sum.Failed != 0 || len(sum.Pods) != 2 || len(sum.Versions) != 2 || sum.Backends["imageproc-0"] != sum.OK {
		t.Fatalf("summary %+v", sum)
	}
	if len(sum.Intervals) < 3 || !strings.Contains(table.String(), "frontend-0=") {
		t.Fatalf("%d intervals; table:\n%s", len(sum.Intervals), table.String())
	}

	failing.Store(true)
	o.jsonOut = ""
	o.maxErrors = 5
	code, err = run(t.Context(), o, &bytes.Buffer{}, &bytes.Buffer{})
	if code != 1 || err == nil || !strings.Contains(err.Error(), "max-errors") {
		t.Fatalf("run with 10%% failures and --max-errors 5: %d %v", code, err)
	}
}

func TestRunReportsRefusedConnections(t *testing.T) {
	o, _ := parse([]string{"--target", "http://" + proctest.FreeAddr(t), "--rate", "50", "--duration", "200ms", "--json", "-", "--max-errors", "-1"}, &bytes.Buffer{})
	var stdout bytes.Buffer
	if code, err := run(t.Context(), o, &stdout, &bytes.Buffer{}); code != 0 || err != nil {
		t.Fatalf("--max-errors -1 still failed: %d %v", code, err)
	}
	var sum stats.Summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil || sum.OK != 0 || sum.Failures["refused"] != sum.Sent || sum.Sent == 0 {
		t.Fatalf("summary %s (%v)", stdout.String(), err)
	}
}

// TestGRPCBalancing drives two real imageproc processes behind one DNS
// name, as a headless Service: round_robin spreads the calls, pick_first
// pins them to one pod — the lesson of the balancing demo.
func TestGRPCBalancing(t *testing.T) {
	_, port, _ := net.SplitHostPort(proctest.FreeAddr(t))
	var ips []netip.Addr
	for i := range 2 {
		ip := netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i)})
		ips = append(ips, ip)
		imageproctest.Start(t, fmt.Sprintf("imageproc-%d", i), net.JoinHostPort(ip.String(), port))
	}
	dns := proctest.ServeDNS(t, map[string][]netip.Addr{"imageproc-headless.test.": ips})
	target := "dns://" + dns + "/imageproc-headless.test:" + port

	for _, tt := range []struct {
		balancing string
		pods      int
	}{{"round_robin", 2}, {"pick_first", 1}} {
		t.Run(tt.balancing, func(t *testing.T) {
			o, err := parse([]string{"--mode", "grpc", "--target", target, "--balancing", tt.balancing, "--rate", "200", "--duration", "1s", "--json", "-", "--quiet"}, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			var stdout bytes.Buffer
			if code, err := run(t.Context(), o, &stdout, &bytes.Buffer{}); code != 0 {
				t.Fatalf("exit %d: %v", code, err)
			}
			var sum stats.Summary
			if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
				t.Fatal(err)
			}
			if len(sum.Pods) != tt.pods || sum.Versions["dev"] != sum.OK {
				t.Fatalf("%s: pods %v versions %v", tt.balancing, sum.Pods, sum.Versions)
			}
			for pod, n := range sum.Pods {
				if tt.pods == 2 && n < sum.OK/3 {
					t.Errorf("round robin gave %s %d of %d calls", pod, n, sum.OK)
				}
			}
		})
	}
}
