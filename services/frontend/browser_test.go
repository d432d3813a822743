package main_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// chromium finds the browser, or skips the test; under CI a missing
// browser is a failure (.ci/run installs Debian's chromium).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH; CI must install it (apt-get install chromium)")
	}
	t.Skip("no chromium on PATH; install Debian's chromium to run the browser test")
	return ""
}

// browser starts a headless Chromium that reaches nothing but loopback.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // the tests may run as root
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 1000),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := run(t, ctx, "screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil { //nolint:gosec // a test artifact
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// loaded reports whether the image matching sel has arrived and decoded.
func loaded(sel string) chromedp.Action[bool] {
	return chromedp.Evaluate[bool](`(() => { const i = document.querySelector(` + "`" + sel + "`" + `); return !!i && i.complete && i.naturalWidth > 0; })()`)
}

func TestBrowserUploadBrowseTransform(t *testing.T) {
	s := startStack(t, 1)
	ctx := browser(t)
	photo := filepath.Join(t.TempDir(), "lighthouse.jpg")
	if err := os.WriteFile(photo, pipelinetest.JPEG(1200, 800, 42), 0o600); err != nil {
		t.Fatal(err)
	}

	// Upload through the page's form, as a person would.
	err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#empty")),
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{photo}),
		chromedp.Click(chromedp.CSS("form.upload button")),
		chromedp.WaitVisible(chromedp.CSS("#preview")),
	)
	if err != nil {
		t.Fatalf("upload through the form: %v", err)
	}
	if h1 := run(t, ctx, "title", chromedp.Text(chromedp.CSS("main h1"))); h1 != "lighthouse.jpg" {
		t.Fatalf("detail page heading %q", h1)
	}
	waitBrowser(t, ctx, "the preview to load", loaded("#preview"))

	// The gallery shows it, with a thumbnail the browser really decoded.
	err = chromedp.Do(ctx, chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.CSS("#gallery img")))
	if err != nil {
		t.Fatal(err)
	}
	if alt := run(t, ctx, "thumbnail alt", chromedp.AttributeValue(chromedp.CSS("#gallery img"), "alt")); alt.Value != "lighthouse.jpg" {
		t.Fatalf("gallery image alt %q", alt.Value)
	}
	waitBrowser(t, ctx, "the thumbnail to load", loaded("#gallery img"))

	// The cluster panel says where the page came from.
	panel := run(t, ctx, "panel", chromedp.Text(chromedp.CSS("#cluster-panel")))
	for _, want := range []string{"frontend-proc-0", "kubelab", "node-1", "10.0.0.7", "app.kubernetes.io/name=frontend", "imageproc-0", "Process test lab"} {
		if !strings.Contains(panel, want) {
			t.Errorf("cluster panel lacks %q:\n%s", want, panel)
		}
	}
	// The stylesheet and the per-version theme loaded under the CSP: the
	// header has the accent colour, not the browser's default.
	bg := run(t, ctx, "header colour", chromedp.Evaluate[string](`getComputedStyle(document.querySelector("header.top")).backgroundColor`))
	if bg == "" || bg == "rgba(0, 0, 0, 0)" {
		t.Errorf("header background %q: style.css or theme.css did not apply", bg)
	}
	screenshot(t, ctx, "gallery.png")

	// Apply a transform on the detail page; the new variant is shown.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#gallery a")),
		chromedp.WaitVisible(chromedp.CSS("#preset")),
		chromedp.SetValue(chromedp.CSS("#preset"), "grayscale"),
		chromedp.Click(chromedp.CSS("form[action$='/transforms'] button")),
		chromedp.WaitVisible(chromedp.CSS("#variants li.made img")),
	)
	if err != nil {
		t.Fatalf("transform through the form: %v", err)
	}
	spec := run(t, ctx, "variant spec", chromedp.Text(chromedp.CSS("#variants li.made .spec")))
	if !strings.Contains(spec, "grayscale") {
		t.Fatalf("made variant %q", spec)
	}
	waitBrowser(t, ctx, "the variant to load", loaded("#variants li.made img"))
	screenshot(t, ctx, "detail.png")

	// The header's switch brings the same page back in Japanese, and the
	// choice sticks on the next page, whatever the browser asks for.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#lang-switch button[value="ja"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#lang-switch button[value="ja"][aria-current]`)),
	)
	if err != nil {
		t.Fatalf("switch to Japanese: %v", err)
	}
	if lang := run(t, ctx, "page language", chromedp.Evaluate[string](`document.documentElement.lang`)); lang != "ja" {
		t.Fatalf("after the switch the page's language is %q", lang)
	}
	if h2 := run(t, ctx, "variants heading", chromedp.Text(chromedp.CSS("main h2"))); h2 != "バリアント" {
		t.Errorf("variants heading in Japanese %q", h2)
	}
	if n := run(t, ctx, "the variant just made", chromedp.Evaluate[int](`document.querySelectorAll("#variants li.made").length`)); n != 1 {
		t.Errorf("the switch came back to another page: %d variants marked as just made", n)
	}
	err = chromedp.Do(ctx, chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.CSS("#gallery img")))
	if err != nil {
		t.Fatal(err)
	}
	nav := run(t, ctx, "header", chromedp.Text(chromedp.CSS("header.top nav")))
	panelTitle := run(t, ctx, "panel title", chromedp.Text(chromedp.CSS("#cluster-panel h2")))
	if !strings.Contains(nav, "ギャラリー") || !strings.Contains(nav, "デモ操作") || panelTitle != "この応答を返したのは" {
		t.Errorf("the next page is not in Japanese: header %q, panel %q", nav, panelTitle)
	}
	screenshot(t, ctx, "gallery-ja.png")
}

// waitBrowser polls a browser condition for up to 10 seconds.
func waitBrowser(t *testing.T, ctx context.Context, what string, cond chromedp.Action[bool]) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, cond)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last error %v)", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrowserLiveView: /cluster draws the namespace from the stream, each
// new snapshot without a reload, and the traffic strip draws who answered.
// The snapshots come from a stand-in for the clusterview sidecar: the real
// one is tested in its packages against a fake API server, and on
// the real cluster by the e2e suite (TestRollingUpdateAndRollbackLoseNothing).
func TestBrowserLiveView(t *testing.T) {
	snapshots := make(chan string, 1)
	sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			select {
			case <-r.Context().Done():
				return
			case s := <-snapshots:
				_, _ = fmt.Fprintf(w, "data: %s\n\n", s)
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(sidecar.Close) // after the frontend's cleanup: its stream ends first
	rollout := func(pods ...string) string {
		var old, next []string
		for _, p := range pods {
			chip := fmt.Sprintf(`{"name":%q,"phase":"Running","ready":true,"restarts":0,"created":"2026-12-07T00:00:00Z"}`, p)
			if strings.HasPrefix(p, "frontend-new") {
				next = append(next, chip)
			} else {
				old = append(old, chip)
			}
		}
		return fmt.Sprintf(`{"namespace":"kubelab","deployments":[{"name":"frontend","revision":"2","desired":2,"ready":2,"updated":%d,"strategy":"RollingUpdate","replicaSets":[`+
			`{"name":"frontend-new","revision":"2","image":"kubelab/frontend:0.2.0","desired":%d,"ready":%d,"pods":[%s]},`+
			`{"name":"frontend-old","revision":"1","image":"kubelab/frontend:0.1.0","desired":%d,"ready":%d,"pods":[%s]}]}],`+
			`"otherPods":[],"services":[],"hpas":[],"jobs":[],"events":[]}`,
			len(next), len(next), len(next), strings.Join(next, ","), len(old), len(old), strings.Join(old, ","))
	}

	s := startStack(t, 1, "CLUSTERVIEW_URL="+sidecar.URL)
	ctx := browser(t)
	snapshots <- rollout("frontend-old-a", "frontend-old-b")
	err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/cluster"),
		chromedp.WaitVisible(chromedp.CSS(`[data-pod="frontend-old-b"]`)),
	)
	if err != nil {
		t.Fatalf("the live view's first snapshot: %v", err)
	}
	shows := func(sel string) chromedp.Action[bool] {
		return chromedp.Evaluate[bool](`document.querySelector('` + sel + `') !== null`)
	}

	// A rollout step: the new ReplicaSet gains a pod, the old one loses one.
	sent := time.Now()
	snapshots <- rollout("frontend-old-a", "frontend-new-c")
	waitBrowser(t, ctx, "the new pod on the page", shows(`[data-replicaset="frontend-new"][data-ready="1"]`))
	t.Logf("a snapshot reached the page %v after the sidecar sent it", time.Since(sent).Round(time.Millisecond))
	if run(t, ctx, "old pod", shows(`[data-pod="frontend-old-b"]`)) {
		t.Fatal("the pod the snapshot dropped is still drawn")
	}

	// The strip: at 20 calls a second, columns with the version that
	// answered, and this frontend's pod in the legend.
	run(t, ctx, "choose a rate", chromedp.SetValue(chromedp.CSS("#strip-rate"), "20"))
	run(t, ctx, "start the strip", chromedp.Evaluate[any](`document.getElementById("strip-rate").dispatchEvent(new Event("change"))`))
	waitBrowser(t, ctx, "the strip's columns", shows(`#strip-bars .strip-seg[data-version]`))
	legend := run(t, ctx, "legend", chromedp.Text(chromedp.CSS("#strip-legend")))
	if !strings.Contains(legend, "frontend-proc-0") {
		t.Fatalf("the strip's legend %q does not name the pod that answered", legend)
	}
	screenshot(t, ctx, "live-view.png")
}
