package stream

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/clusterview/internal/view"
)

// TestStreamSendsEachSnapshot: the stream is server-sent events, one JSON
// snapshot an event; a browser over the limit gets a problem, not a
// stream; and every stream ends when the hub closes (the pod stopping),
// so the browser reconnects elsewhere.
func TestStreamSendsEachSnapshot(t *testing.T) {
	hub := view.NewHub(1)
	srv := httptest.NewServer(Handler(hub))
	defer srv.Close()
	hub.Publish([]byte(`{"namespace":"kubelab","n":1}`))

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // closed by the defer below
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); l != "" {
				lines <- l
			}
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case l := <-lines:
			if l != want {
				t.Fatalf("stream line %q, want %q", l, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %q within 5 s", want)
		}
	}
	expect("retry: 2000")
	expect(`data: {"namespace":"kubelab","n":1}`)

	second, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(second.Body)
	second.Body.Close()
	if second.StatusCode != http.StatusServiceUnavailable || second.Header.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(string(body), "problems.md#too-many-views") {
		t.Fatalf("a viewer over the limit: %d %s", second.StatusCode, body)
	}

	hub.Publish([]byte(`{"namespace":"kubelab","n":2}`))
	expect(`data: {"namespace":"kubelab","n":2}`)
	hub.Close()
	select {
	case l, open := <-lines:
		if open {
			t.Fatalf("after Close the stream sent %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end when the hub closed")
	}
}
