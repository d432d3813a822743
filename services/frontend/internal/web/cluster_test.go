package web

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The live view's data comes from the clusterview sidecar, tested in its
// own packages against a fake API server (kube/kubetest) and, in the e2e suite,
// against the real API server (TestLiveViewDuringRollout). Here a stand-in
// sidecar checks what the frontend adds: the relay.

// sidecar is a stand-in clusterview: it sends one event per value on
// events and reports, on gone, when a relayed request has ended.
func sidecar(t *testing.T) (u *url.URL, events chan<- string, gone <-chan struct{}) {
	t.Helper()
	ev, g := make(chan string), make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { g <- struct{}{} }()
		if r.URL.Path != "/cluster/stream" || r.Header.Get("Cookie") != "" {
			http.Error(w, "wrong path or a cookie: "+r.URL.String(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = fmt.Fprint(w, "retry: 2000\n\n")
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case e := <-ev:
				_, _ = fmt.Fprintf(w, "data: %s\n\n", e)
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u, ev, g
}

// lines reads a stream's non-empty lines.
func lines(t *testing.T, ctx context.Context, streamURL string) (*http.Response, <-chan string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, streamURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", "session=secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan string)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); l != "" {
				out <- l
			}
		}
	}()
	return resp, out
}

func expectLine(t *testing.T, ls <-chan string, want string) {
	t.Helper()
	select {
	case l := <-ls:
		if l != want {
			t.Fatalf("stream line %q, want %q", l, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no %q within 5 s", want)
	}
}

func expectGone(t *testing.T, gone <-chan struct{}, why string) {
	t.Helper()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatalf("the sidecar's request did not end %s", why)
	}
}

// TestClusterStreamRelaysTheSidecar: each event reaches the browser as
// the sidecar sends it (not when a buffer fills), without the browser's
// cookies; a browser that leaves ends the sidecar's request; and the
// server stopping ends every stream at once, so browsers reconnect to a
// pod that stays instead of holding up the graceful stop.
func TestClusterStreamRelaysTheSidecar(t *testing.T) {
	h := &harness{}
	var events chan<- string
	var gone <-chan struct{}
	h.clusterView, events, gone = sidecar(t)
	h.imageproc, h.imageprocAddr = h.start(t)

	ctx, leave := context.WithCancel(t.Context())
	resp, ls := lines(t, ctx, h.URL+"/cluster/stream") //nolint:bodyclose // lines' reader closes it
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	expectLine(t, ls, "retry: 2000")
	events <- `{"n":1}`
	expectLine(t, ls, `data: {"n":1}`)
	events <- `{"n":2}`
	expectLine(t, ls, `data: {"n":2}`)
	leave()
	expectGone(t, gone, "when the browser left")

	_, ls = lines(t, t.Context(), h.URL+"/cluster/stream") //nolint:bodyclose // lines' reader closes it
	expectLine(t, ls, "retry: 2000")
	h.srv.StopStreams()
	expectGone(t, gone, "when the server stopped")
	for range ls { // the stream ends too
	}
}

// TestClusterStreamWithoutTheSidecar: a sidecar that does not answer is a
// problem the browser can read, not a hung request.
func TestClusterStreamWithoutTheSidecar(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	u, _ := url.Parse(dead.URL)
	dead.Close()
	h := &harness{clusterView: u}
	h.imageproc, h.imageprocAddr = h.start(t)
	resp, body := h.do(t, http.MethodGet, "/cluster/stream", nil, "Accept", "application/json")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "cluster-view-down") {
		t.Fatalf("stream with its sidecar down: %d %s", resp.StatusCode, body)
	}
	if resp, page := h.do(t, http.MethodGet, "/cluster", nil); resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="cluster-state"`) {
		t.Fatalf("/cluster with a sidecar (down): %d, want the live view's page", resp.StatusCode)
	}
}

// TestClusterPageWithoutTheSidecar: under make run, or an overlay without
// the live-view component, the page says so in the reader's language and
// keeps the traffic strip; the stream is a problem.
func TestClusterPageWithoutTheSidecar(t *testing.T) {
	h := newHarness(t)
	for lang, want := range map[string]string{"en": "The live view is not deployed here", "ja": "ここにはライブビューがデプロイされていません"} {
		resp, page := h.do(t, http.MethodGet, "/cluster", nil, "Accept-Language", lang)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, want) || !strings.Contains(page, `id="strip"`) {
			t.Errorf("%s /cluster: %d, want %q and the traffic strip", lang, resp.StatusCode, want)
		}
	}
	resp, body := h.do(t, http.MethodGet, "/cluster/stream", nil, "Accept", "application/json")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "cluster-view-off") {
		t.Fatalf("stream without a sidecar: %d %s", resp.StatusCode, body)
	}
}
