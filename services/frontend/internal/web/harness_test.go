package web

import (
	"bytes"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/frontend/internal/auth"
	"github.com/kubelab/kubelab/services/frontend/internal/backend"
	"github.com/kubelab/kubelab/services/frontend/internal/demo"
	"github.com/kubelab/kubelab/services/frontend/internal/live"
	"github.com/kubelab/kubelab/services/frontend/internal/pod"
	"github.com/kubelab/kubelab/services/imageproc/imageproctest"
	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/config"
	"github.com/kubelab/kubelab/services/platform/health"
	"github.com/kubelab/kubelab/services/platform/proctest"
	"github.com/kubelab/kubelab/services/platform/telemetry"
)

// The handlers are tested against a real imageproc: the binary, on its
// embedded store, as `make run` starts it.

type harness struct {
	*httptest.Server
	imageproc *proctest.Proc
	live      atomic.Pointer[Live]
	srv       *Server
	// clusterView, when set before start, is the live view's sidecar.
	clusterView *url.URL
	token       atomic.Pointer[string]
	checker     *health.Checker
	crashed     atomic.Int32

	// imageprocAddr is where gRPC clients reach imageproc directly.
	imageprocAddr string
}

const testToken = "test-admin-token"

// testLessonsURL is where the pages link the course.
const testLessonsURL = "https://lessons.test/docs/lessons"

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{}
	h.imageproc, h.imageprocAddr = h.start(t)
	return h
}

func (h *harness) start(t *testing.T) (*proctest.Proc, string) {
	t.Helper()
	ip := imageproctest.Start(t, "imageproc-test-0", "")
	p, addr := ip.Proc, ip.Addr
	client, err := backend.Dial(backend.Options{Target: "dns:///" + addr, Balancing: backend.RoundRobin, Timeout: 5 * time.Second, StreamTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	h.setLive(t, nil)
	tok := testToken
	h.token.Store(&tok)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h.checker = health.NewChecker(log, time.Hour, time.Second)
	h.checker.AddReadiness("imageproc", client.Check)
	h.checker.Refresh()
	info := build.Info{Service: "frontend", Version: "1.2.3", Revision: "abc", Instance: "frontend-test-0"}
	srv, err := New(Deps{
		Log: log, Build: info, Pod: pod.Info{Name: "frontend-test-0", Namespace: "kubelab", Starts: 1},
		Live: h.live.Load, Backend: client, Health: h.checker, Metrics: telemetry.NewMetrics(info),
		Auth:  auth.New(func() string { return *h.token.Load() }, []byte("0123456789abcdef")),
		Demo:  demo.New(log, h.checker.ForceUnready),
		Crash: func() { h.crashed.Add(1) }, Started: time.Now(), LessonsURL: testLessonsURL,
		ClusterView: h.clusterView,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.Server = httptest.NewServer(srv.Handler())
	t.Cleanup(h.Close)
	return p, addr
}

// setLive replaces the ConfigMap content the handlers see.
func (h *harness) setLive(t *testing.T, files map[string]string) {
	t.Helper()
	h.live.Store(&Live{
		Settings:          live.Parse(config.Snapshot{Files: files}, 50<<20),
		Labels:            []pod.Label{{Key: "app.kubernetes.io/name", Value: "frontend"}},
		SecretFingerprint: "f00dfeedbeef",
	})
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// reply is a response whose body has been read and closed.
type reply struct {
	StatusCode int
	Header     http.Header
	cookies    []*http.Cookie
}

func (r *reply) Cookies() []*http.Cookie { return r.cookies }

func (h *harness) do(t *testing.T, method, path string, body io.Reader, headers ...string) (*reply, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, h.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &reply{StatusCode: resp.StatusCode, Header: resp.Header, cookies: resp.Cookies()}, string(b)
}

// form builds a multipart body with one file field.
func form(t testing.TB, field, filename string, data []byte) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile(field, filename)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(data)
	_ = mw.Close()
	return &buf, mw.FormDataContentType()
}
