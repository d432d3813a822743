package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/imageproc/imageproctest"
	"github.com/kubelab/kubelab/services/platform/config/configtest"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

// These tests run the real binaries wired together as pods would be: the
// frontend with its ConfigMap, Secret and downwardAPI volumes as kubelet
// lays them out, imageproc behind it, loadgen in front.

type stack struct {
	imageproc []*proctest.Proc
	data      []string // each imageproc's DATA_DIR
	admin     []string // each imageproc's ADMIN_ADDR (probes, /metrics)
	frontend  *proctest.Proc
	url       string
	metrics   string // the frontend's METRICS_ADDR
	config    string // the ConfigMap volume
	secret    string // the Secret volume
}

// startStack runs `replicas` imageproc processes and a frontend balancing
// over them, with extra frontend environment. As behind a headless
// Service, the replicas share a port on different addresses (127.0.0.1,
// 127.0.0.2, ...) and one DNS name resolves to all of them.
func startStack(t testing.TB, replicas int, env ...string) *stack {
	t.Helper()
	s := &stack{config: t.TempDir(), secret: t.TempDir(), metrics: proctest.FreeAddr(t)}
	_, port, _ := net.SplitHostPort(proctest.FreeAddr(t))
	var ips []netip.Addr
	for i := range replicas {
		ip := netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i)})
		ips = append(ips, ip)
		srv := imageproctest.Start(t, fmt.Sprintf("imageproc-%d", i), net.JoinHostPort(ip.String(), port))
		s.imageproc, s.data, s.admin = append(s.imageproc, srv.Proc), append(s.data, srv.DataDir), append(s.admin, srv.AdminAddr)
	}
	dns := proctest.ServeDNS(t, map[string][]netip.Addr{"imageproc-headless.test.": ips})
	podinfo := t.TempDir()
	write(t, s.config, map[string]string{"title": "Process test lab"})
	write(t, s.secret, map[string]string{"admin-token": "first-token"})
	write(t, podinfo, map[string]string{"labels": "app.kubernetes.io/name=\"frontend\"\napp.kubernetes.io/version=\"9.9.9\"\n"})
	addr := proctest.FreeAddr(t)
	s.url = "http://" + addr
	s.frontend = proctest.Start(t, "frontend", proctest.Build(t, "."), nil, append([]string{
		"HTTP_ADDR=" + addr, "METRICS_ADDR=" + s.metrics, "IMAGEPROC_ADDR=dns://" + dns + "/imageproc-headless.test:" + port, "IMAGEPROC_BALANCING=round_robin",
		"CONFIG_DIR=" + s.config, "SECRET_DIR=" + s.secret, "PODINFO_DIR=" + podinfo,
		"POD_NAME=frontend-proc-0", "POD_NAMESPACE=kubelab", "NODE_NAME=node-1", "POD_IP=10.0.0.7", "LOG_LEVEL=debug",
	}, env...)...)
	proctest.WaitFor(t, "frontend ready", 20*time.Second, func() bool { return proctest.Status(s.url+"/readyz") == http.StatusOK })
	return s
}

// write lays files out the way kubelet does, and swaps them atomically.
func write(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	if err := configtest.WriteAtomic(dir, files); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestProcessConfigMapSwapAppliesWithoutRestart(t *testing.T) {
	s := startStack(t, 1)
	_, page := get(t, s.url+"/")
	for _, want := range []string{"Process test lab", "frontend-proc-0", "node-1", "10.0.0.7", "app.kubernetes.io/version=9.9.9"} {
		if !strings.Contains(page, want) {
			t.Fatalf("page lacks %q:\n%s", want, page)
		}
	}

	write(t, s.config, map[string]string{"title": "Swapped title", "banner": "Config reloaded live", "features": "upload"})
	swapped := time.Now()
	proctest.WaitFor(t, "the new title on the page", 2*time.Second, func() bool {
		_, page = get(t, s.url+"/")
		return strings.Contains(page, "Swapped title") && strings.Contains(page, "Config reloaded live")
	})
	t.Logf("page changed %v after the swap", time.Since(swapped).Round(time.Millisecond))
	// The feature flag applies too: batches are off now.
	if code, _ := get(t, s.url+"/api/v1/batches/x"); code == 0 {
		t.Fatal("frontend stopped answering")
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/api/v1/batches", strings.NewReader(`{}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("batch with the feature off: %d, want 403", resp.StatusCode)
	}

	// Same process, first start: no restart happened.
	var info struct {
		Pod struct{ Starts int }
	}
	_, body := get(t, s.url+"/api/v1/info")
	if err := json.Unmarshal([]byte(body), &info); err != nil || info.Pod.Starts != 1 {
		t.Fatalf("info %s: %v", body, err)
	}
	select {
	case <-s.frontend.Exited():
		t.Fatal("frontend exited during the swap")
	default:
	}
}

func TestProcessSecretRotation(t *testing.T) {
	s := startStack(t, 1)
	demo := func(token string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+"/api/v1/admin/demo", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	_, before := get(t, s.url+"/api/v1/info")
	if demo("first-token") != http.StatusOK || demo("second-token") != http.StatusUnauthorized {
		t.Fatal("first token not the only one accepted")
	}
	write(t, s.secret, map[string]string{"admin-token": "second-token"})
	proctest.WaitFor(t, "the rotated token to be accepted", 2*time.Second, func() bool { return demo("second-token") == http.StatusOK })
	if demo("first-token") != http.StatusUnauthorized {
		t.Fatal("old token still accepted after rotation")
	}
	_, after := get(t, s.url+"/api/v1/info")
	if before == after || strings.Contains(after, "second-token") || strings.Contains(s.frontend.Log.String(), "second-token") {
		t.Fatal("fingerprint unchanged, or the token leaked into the info or the log")
	}
}

func TestProcessRoundRobinAndPickFirst(t *testing.T) {
	for _, tt := range []struct {
		balancing string
		wantPods  int
	}{{"round_robin", 2}, {"pick_first", 1}} {
		t.Run(tt.balancing, func(t *testing.T) {
			s := startStack(t, 2, "IMAGEPROC_BALANCING="+tt.balancing)
			sum := runLoadgen(t, "--target", s.url, "--path", "/api/v1/images", "--rate", "100", "--duration", "2s")
			if sum.Failed != 0 || len(sum.Backends) != tt.wantPods {
				t.Fatalf("%s: %d failed, imageproc pods %v; want %d pods", tt.balancing, sum.Failed, sum.Backends, tt.wantPods)
			}
			if tt.wantPods == 2 {
				for pod, n := range sum.Backends {
					if n < sum.OK/3 {
						t.Errorf("round robin gave %s only %d of %d calls", pod, n, sum.OK)
					}
				}
			}
		})
	}
}

func TestProcessSIGTERMUnderLoad(t *testing.T) {
	const drain = 2 * time.Second
	s := startStack(t, 1, "DRAIN_DELAY="+drain.String(), "SHUTDOWN_TIMEOUT=5s")

	// A slow request, in flight when the drain ends and shutdown begins.
	setLatency(t, s.url, "first-token", "1500ms")
	slow := make(chan int, 1)

	lg := startLoadgen(t, "--target", s.url, "--rate", "100", "--duration", "2500ms")
	time.Sleep(300 * time.Millisecond)
	sent := time.Now()
	s.frontend.Signal(t, syscall.SIGTERM)
	proctest.WaitFor(t, "readyz 503", drain/2, func() bool { return proctest.Status(s.url+"/readyz") == http.StatusServiceUnavailable })
	t.Logf("readiness failed %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
	time.Sleep(drain - time.Since(sent) - 500*time.Millisecond)
	go func() { code, _ := get(t, s.url+"/api/v1/info"); slow <- code }()

	if code := lg.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("loadgen exit %d: requests failed during the drain\n%s", code, lg.Log.String())
	}
	if code := <-slow; code != http.StatusOK {
		t.Fatalf("the request in flight at shutdown got %d", code)
	}
	if code := s.frontend.Wait(t, drain+5*time.Second); code != 0 {
		t.Fatalf("frontend exit status %d", code)
	}
	if took := time.Since(sent); took < drain {
		t.Fatalf("exited %v after SIGTERM, before the drain ended", took)
	}
}

func TestProcessCrashIsCountedAsARestart(t *testing.T) {
	state := t.TempDir()
	s := startStack(t, 1, "STATE_DIR="+state)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/api/v1/admin/crash", nil)
	req.Header.Set("Authorization", "Bearer first-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if code := s.frontend.Wait(t, 5*time.Second); code == 0 {
		t.Fatal("crash exited 0; kubelet would not count it as a failure")
	}
	// kubelet restarts the container with the same emptyDir.
	addr := proctest.FreeAddr(t)
	proctest.Start(t, "frontend-restarted", proctest.Build(t, "."), nil, "HTTP_ADDR="+addr, "METRICS_ADDR=", "STATE_DIR="+state,
		"IMAGEPROC_ADDR=127.0.0.1:1", "IMAGEPROC_BALANCING=pick_first")
	proctest.WaitFor(t, "restart", 10*time.Second, func() bool { return proctest.Status("http://"+addr+"/healthz") == http.StatusOK })
	_, page := get(t, "http://"+addr+"/admin")
	if !strings.Contains(page, `id="panel-starts">2`) {
		t.Fatalf("panel does not show the second start:\n%s", page)
	}
}

// TestProcessImageprocOutage: by default the frontend's readiness says
// only whether this pod can serve, so with imageproc down it stays in its
// Service and the gallery explains the outage. READY_NEEDS_IMAGEPROC=true
// shows what the option costs: readiness fails, and in a cluster every
// frontend pod would leave the Service at once.
func TestProcessImageprocOutage(t *testing.T) {
	for _, tt := range []struct {
		name      string
		env       []string
		wantReady int
	}{
		{"default", nil, http.StatusOK},
		{"READY_NEEDS_IMAGEPROC=true", []string{"READY_NEEDS_IMAGEPROC=true"}, http.StatusServiceUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, down := proctest.FreeAddr(t), proctest.FreeAddr(t) // nothing listens on down
			url := "http://" + addr
			proctest.Start(t, "frontend", proctest.Build(t, "."), nil, append([]string{"HTTP_ADDR=" + addr, "METRICS_ADDR=", "IMAGEPROC_ADDR=dns:///" + down}, tt.env...)...)
			proctest.WaitFor(t, fmt.Sprintf("readyz %d", tt.wantReady), 20*time.Second, func() bool {
				code, body := get(t, url+"/readyz")
				return code == tt.wantReady && (code == http.StatusOK || strings.Contains(body, `"imageproc"`))
			})
			code, page := get(t, url+"/")
			if code != http.StatusServiceUnavailable || !strings.Contains(page, `id="degraded"`) || !strings.Contains(page, "imageproc unavailable") {
				t.Fatalf("gallery with imageproc down: %d\n%s", code, page)
			}
		})
	}
}

func TestProcessBadConfigNamesVariable(t *testing.T) {
	for _, tt := range []struct{ env, name string }{
		{"IMAGEPROC_BALANCING=random", "IMAGEPROC_BALANCING"},
		{"MAX_UPLOAD_BYTES=-1", "MAX_UPLOAD_BYTES"},
		{"IMAGEPROC_TIMEOUT=soon", "IMAGEPROC_TIMEOUT"},
		{"CONFIG_DIR=/nonexistent/kubelab", "CONFIG_DIR"},
		{"LESSONS_URL=docs/lessons", "LESSONS_URL"},
	} {
		cmd := exec.CommandContext(t.Context(), proctest.Build(t, "."))
		cmd.Env = append(os.Environ(), "HTTP_ADDR=127.0.0.1:0", tt.env)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tt.name) {
			t.Errorf("%s: err %v, output %s; want a failure naming %s", tt.env, err, out, tt.name)
		}
	}
}

func setLatency(t *testing.T, url, token, latency string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, url+"/api/v1/admin/demo", strings.NewReader(`{"latency":"`+latency+`"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("set latency: %v %v", resp, err)
	}
	_ = resp.Body.Close()
}

// summary is the part of loadgen's --json output these tests read.
type summary struct {
	OK, Failed int
	Versions   map[string]int
	Backends   map[string]int
}

func startLoadgen(t *testing.T, args ...string) *proctest.Proc {
	t.Helper()
	out := filepath.Join(t.TempDir(), "summary.json")
	return proctest.Start(t, "loadgen", proctest.Build(t, "github.com/kubelab/kubelab/services/loadgen"),
		append([]string{"--json", out, "--timeout", "5s"}, args...))
}

func runLoadgen(t *testing.T, args ...string) summary {
	t.Helper()
	out := filepath.Join(t.TempDir(), "summary.json")
	lg := proctest.Start(t, "loadgen", proctest.Build(t, "github.com/kubelab/kubelab/services/loadgen"),
		append([]string{"--json", out, "--max-errors", "-1"}, args...))
	lg.Wait(t, time.Minute)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, lg.Log.String())
	}
	var s summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}
