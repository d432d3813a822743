package web

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/frontend/internal/demo"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

var imageLink = regexp.MustCompile(`href="/images/([0-9A-Za-z]+)"`)

func TestPagesUploadBrowseTransform(t *testing.T) {
	h := newHarness(t)

	resp, body := h.do(t, http.MethodGet, "/", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="empty"`) {
		t.Fatalf("empty gallery: %d\n%s", resp.StatusCode, body)
	}
	// The cluster panel names this pod, its version and the live settings.
	for _, want := range []string{"frontend-test-0", "1.2.3", "kubelab photo lab", "app.kubernetes.io/name=frontend", "f00dfeedbeef"} {
		if !strings.Contains(body, want) {
			t.Errorf("panel lacks %q", want)
		}
	}
	// Each part of the panel links to its lesson, in the reader's language.
	_, body = h.do(t, http.MethodGet, "/", nil, "Accept-Language", "ja,en;q=0.5")
	for _, file := range lessonFiles {
		if want := `<a class="lesson" href="` + testLessonsURL + "/ja/" + file + `.md">レッスン`; !strings.Contains(body, want) {
			t.Errorf("panel lacks the link %s", want)
		}
	}

	photo := pipelinetest.JPEG(640, 480, 1)
	b, ct := form(t, "file", "harbour.jpg", photo)
	resp, _ = h.do(t, http.MethodPost, "/upload", b, "Content-Type", ct)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/images/") {
		t.Fatalf("upload: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	detailURL := resp.Header.Get("Location")

	_, body = h.do(t, http.MethodGet, "/", nil)
	m := imageLink.FindStringSubmatch(body)
	if m == nil || "/images/"+m[1] != detailURL || !strings.Contains(body, "harbour.jpg") {
		t.Fatalf("gallery does not link the upload %s:\n%s", detailURL, body)
	}
	if !strings.Contains(body, "imageproc-test-0") {
		t.Error("panel does not say which imageproc pod answered")
	}
	id := m[1]

	resp, body = h.do(t, http.MethodGet, detailURL, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "640 × 480") {
		t.Fatalf("detail: %d\n%s", resp.StatusCode, body)
	}

	resp, _ = h.do(t, http.MethodPost, detailURL+"/transforms", strings.NewReader("preset=grayscale"),
		"Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "made=") {
		t.Fatalf("transform: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = h.do(t, http.MethodGet, resp.Header.Get("Location"), nil)
	if !strings.Contains(body, `class="made"`) || !strings.Contains(body, "grayscale") {
		t.Fatalf("detail does not show the new variant:\n%s", body)
	}

	// Images: content-hash ETags, immutable caching, 304 on revalidation.
	for _, path := range []string{"/media/" + id, "/media/" + id + "/thumbnail", "/media/" + id + "/preview"} {
		resp, data := h.do(t, http.MethodGet, path, nil)
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/jpeg" || len(etag) != 66 ||
			!strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || len(data) == 0 {
			t.Fatalf("%s: %d %v (%d bytes)", path, resp.StatusCode, resp.Header, len(data))
		}
		resp, data = h.do(t, http.MethodGet, path, nil, "If-None-Match", etag)
		if resp.StatusCode != http.StatusNotModified || data != "" {
			t.Fatalf("%s revalidation: %d with %d bytes", path, resp.StatusCode, len(data))
		}
	}
	if resp, data := h.do(t, http.MethodGet, "/media/"+id, nil); len(data) != len(photo) {
		t.Fatalf("original is %d bytes, uploaded %d (%d)", len(data), len(photo), resp.StatusCode)
	}
}

func TestAPI(t *testing.T) {
	h := newHarness(t)

	resp, body := h.do(t, http.MethodGet, "/api/v1/info", nil)
	var info Info
	if err := json.Unmarshal([]byte(body), &info); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("info: %d %v\n%s", resp.StatusCode, err, body)
	}
	if resp.Header.Get("X-Served-By") != "frontend-test-0" || resp.Header.Get("X-Version") != "1.2.3" ||
		info.Pod.Name != "frontend-test-0" || info.Color != VersionColor("1.2.3") || info.Secret != "f00dfeedbeef" {
		t.Fatalf("info headers %v body %+v", resp.Header, info)
	}

	resp, body = h.do(t, http.MethodPost, "/api/v1/images?filename=raw.png", strings.NewReader(string(pipelinetest.PNG(300, 200, 2))),
		"Content-Type", "image/png")
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(resp.Header.Get("Location"), "/api/v1/images/") {
		t.Fatalf("raw upload: %d %s", resp.StatusCode, body)
	}
	body0 := body // the upload's answer, with its delete token
	var up struct{ Image struct{ ID, Filename string } }
	up.Image.ID = jsonField(t, body, "image", "id")
	if up.Image.ID == "" || jsonField(t, body, "image", "filename") != "raw.png" {
		t.Fatalf("upload answer %s", body)
	}

	resp, body = h.do(t, http.MethodGet, "/api/v1/images?page_size=10", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, up.Image.ID) || resp.Header.Get("X-Backend-Served-By") != "imageproc-test-0" {
		t.Fatalf("list: %d %v %s", resp.StatusCode, resp.Header, body)
	}

	transform := `{"operations":[{"thumbnail":{"size":64}}],"output":{"format":"FORMAT_PNG"}}`
	resp, body = h.do(t, http.MethodPost, "/api/v1/images/"+up.Image.ID+"/transforms", strings.NewReader(transform), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusCreated || !strings.Contains(body, `"spec":"thumbnail(64)|format(png)"`) {
		t.Fatalf("transform: %d %s", resp.StatusCode, body)
	}
	resp, body = h.do(t, http.MethodPost, "/api/v1/images/"+up.Image.ID+"/transforms", strings.NewReader(transform), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"cached":true`) {
		t.Fatalf("repeated transform: %d %s", resp.StatusCode, body)
	}
	resp, body = h.do(t, http.MethodGet, "/api/v1/images/"+up.Image.ID, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "thumbnail(64)|format(png)") {
		t.Fatalf("get: %d %s", resp.StatusCode, body)
	}

	resp, body = h.do(t, http.MethodPost, "/api/v1/batches", strings.NewReader(`{"operations":[{"grayscale":{}}]}`), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("batch: %d %s", resp.StatusCode, body)
	}
	batchID := jsonField(t, body, "batch", "id")
	resp, body = h.do(t, http.MethodGet, "/api/v1/batches/"+batchID, nil)
	if resp.StatusCode != http.StatusOK || jsonNumber(t, body, "batch", "total") != 1 || jsonNumber(t, body, "batch", "pending") != 1 {
		t.Fatalf("batch status: %d %s", resp.StatusCode, body)
	}
	resp, body = h.do(t, http.MethodGet, "/batches/"+batchID, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-count="pending">1<`) {
		t.Fatalf("batch page: %d %s", resp.StatusCode, body)
	}

	resp, _ = h.do(t, http.MethodDelete, "/api/v1/images/"+up.Image.ID, nil, "Authorization", "Bearer "+jsonString(t, body0, "delete_token"))
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	resp, body = h.do(t, http.MethodGet, "/api/v1/images/"+up.Image.ID, nil)
	assertProblem(t, resp, body, http.StatusNotFound, "")
}

func jsonField(t *testing.T, body, outer, inner string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	o, _ := m[outer].(map[string]any)
	s, _ := o[inner].(string)
	return s
}

func jsonNumber(t *testing.T, body, outer, inner string) float64 {
	t.Helper()
	var m map[string]map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	n, _ := m[outer][inner].(float64)
	return n
}

func assertProblem(t *testing.T, resp *reply, body string, status int, detail string) {
	t.Helper()
	var p problem
	if err := json.Unmarshal([]byte(body), &p); err != nil || resp.StatusCode != status || p.Status != status ||
		resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(p.Detail, detail) {
		t.Fatalf("want problem %d containing %q; got %d %s %s", status, detail, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

func TestBadInputIsRefusedAndLosesNothing(t *testing.T) {
	h := newHarness(t)
	good, ct := form(t, "file", "good.jpg", pipelinetest.JPEG(200, 150, 3))
	if resp, body := h.do(t, http.MethodPost, "/api/v1/images", good, "Content-Type", ct); resp.StatusCode != http.StatusCreated {
		t.Fatalf("good upload: %d %s", resp.StatusCode, body)
	}
	h.setLive(t, map[string]string{"upload-limit": "100KiB"})

	jpeg := pipelinetest.JPEG(300, 200, 4)
	big := pipelinetest.PNG(1200, 900, 5) // well over 100 KiB
	tests := []struct {
		name   string
		path   string
		body   func() (string, string)
		status int
		detail string
	}{
		{"not an image", "/api/v1/images", func() (string, string) {
			b, ct := form(t, "file", "notes.txt", []byte("just some text, not a photo"))
			return b.String(), ct
		}, http.StatusBadRequest, "not a JPEG, PNG, GIF or WebP image"},
		{"truncated jpeg", "/api/v1/images", func() (string, string) {
			b, ct := form(t, "file", "cut.jpg", jpeg[:len(jpeg)/2])
			return b.String(), ct
		}, http.StatusBadRequest, ""},
		{"over the live limit", "/api/v1/images", func() (string, string) {
			b, ct := form(t, "file", "big.png", big)
			return b.String(), ct
		}, http.StatusRequestEntityTooLarge, "100 KiB"},
		{"raw body over the live limit", "/api/v1/images?filename=big.png", func() (string, string) { return string(big), "image/png" },
			http.StatusRequestEntityTooLarge, "upload-limit"},
		{"no file field", "/api/v1/images", func() (string, string) {
			b, ct := form(t, "other", "x.jpg", jpeg)
			return b.String(), ct
		}, http.StatusBadRequest, `"file"`},
		{"empty file", "/api/v1/images", func() (string, string) {
			b, ct := form(t, "file", "empty.jpg", nil)
			return b.String(), ct
		}, http.StatusBadRequest, "empty"},
		{"wrong media type", "/api/v1/images", func() (string, string) { return "{}", "application/json" }, http.StatusUnsupportedMediaType, "not a photo"},
		{"unknown transform field", "/api/v1/images/x/transforms", func() (string, string) { return `{"operatoins":[]}`, "application/json" }, http.StatusBadRequest, "operatoins"},
		{"invalid transform", "/api/v1/images/x/transforms", func() (string, string) {
			return `{"operations":[{"thumbnail":{"size":0}}]}`, "application/json"
		}, http.StatusBadRequest, "thumbnail"},
		{"transform of a missing image", "/api/v1/images/nope/transforms", func() (string, string) {
			return `{"operations":[{"grayscale":{}}]}`, "application/json"
		}, http.StatusNotFound, ""},
		{"batch of a missing image", "/api/v1/batches", func() (string, string) {
			return `{"image_ids":["nope"],"operations":[{"grayscale":{}}]}`, "application/json"
		}, http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := tt.body()
			resp, answer := h.do(t, http.MethodPost, tt.path, strings.NewReader(body), "Content-Type", ct)
			assertProblem(t, resp, answer, tt.status, tt.detail)
			// The fault is the photo's, not one message's of the stream.
			if strings.Contains(answer, "chunk") {
				t.Errorf("the detail speaks of chunks: %s", answer)
			}
		})
	}

	// The same mistakes through the page get a page, not JSON.
	b, ct := form(t, "file", "notes.txt", []byte("not a photo"))
	resp, body := h.do(t, http.MethodPost, "/upload", b, "Content-Type", ct)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `id="error-detail"`) {
		t.Fatalf("page upload of text: %d %s", resp.StatusCode, body)
	}

	// The gallery still holds exactly the one good photo.
	_, body = h.do(t, http.MethodGet, "/api/v1/images", nil)
	if n := strings.Count(body, `"sha256"`); n != 1 {
		t.Fatalf("gallery holds %d photos after bad uploads, want 1: %s", n, body)
	}
}

func TestSecurity(t *testing.T) {
	h := newHarness(t)
	resp, _ := h.do(t, http.MethodGet, "/", nil)
	for header, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
	} {
		if !strings.Contains(resp.Header.Get(header), want) {
			t.Errorf("%s = %q, want %q", header, resp.Header.Get(header), want)
		}
	}

	// A form posted from another site is refused before any handler runs,
	// with a page for people and problem JSON for the API, saying why.
	b, ct := form(t, "file", "x.jpg", pipelinetest.JPEG(10, 10, 1))
	resp, body := h.do(t, http.MethodPost, "/upload", b, "Content-Type", ct, "Sec-Fetch-Site", "cross-site")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, "came from a page of another site") {
		t.Fatalf("cross-site upload: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, _ = h.do(t, http.MethodPost, "/admin/login", strings.NewReader("token="+testToken),
		"Content-Type", "application/x-www-form-urlencoded", "Origin", "https://evil.example")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin login: %d, want 403", resp.StatusCode)
	}
	b, ct = form(t, "file", "x.jpg", pipelinetest.JPEG(10, 10, 1))
	resp, body = h.do(t, http.MethodPost, "/api/v1/images", b, "Content-Type", ct, "Origin", "https://evil.example")
	assertProblem(t, resp, body, http.StatusForbidden, "POST came from a page of https://evil.example")
	if resp.Header.Get("X-Served-By") != "frontend-test-0" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("the refusal lacks the identity and security headers: %v", resp.Header)
	}
	resp, body = h.do(t, http.MethodDelete, "/api/v1/images/x", nil, "Sec-Fetch-Site", "same-site")
	assertProblem(t, resp, body, http.StatusForbidden, "DELETE came from a page of another site")

	// Metrics are not served here, where the Ingress routes (main serves
	// them on METRICS_ADDR).
	if resp, _ = h.do(t, http.MethodGet, "/metrics", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/metrics on the public handler: %d, want 404", resp.StatusCode)
	}

	for _, path := range []string{"/static/../web.go", "/static/%2e%2e/web.go", "/static/templates/layout.html", "/media/..%2f..%2fetc%2fpasswd"} {
		resp, body := h.do(t, http.MethodGet, path, nil)
		if resp.StatusCode == http.StatusOK || strings.Contains(body, "package web") || strings.Contains(body, "root:") {
			t.Errorf("%s: %d leaked %q", path, resp.StatusCode, body[:min(len(body), 80)])
		}
	}
	resp, body = h.do(t, http.MethodGet, "/static/style.css", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "--accent") {
		t.Fatalf("style.css: %d", resp.StatusCode)
	}

	resp, body = h.do(t, http.MethodGet, "/api/v1/nothing", nil)
	assertProblem(t, resp, body, http.StatusNotFound, "/api/v1/nothing")
	resp, body = h.do(t, http.MethodPut, "/api/v1/info", nil)
	assertProblem(t, resp, body, http.StatusMethodNotAllowed, "GET")
	if resp.Header.Get("Allow") != "GET" {
		t.Fatalf("Allow = %q", resp.Header.Get("Allow"))
	}
}

func TestDemoControls(t *testing.T) {
	h := newHarness(t)
	bearer := "Bearer " + testToken
	put := func(body string, auth ...string) (*reply, string) {
		return h.do(t, http.MethodPut, "/api/v1/admin/demo", strings.NewReader(body), append([]string{"Content-Type", "application/json"}, auth...)...)
	}
	resp, body := put(`{"error_rate":1}`)
	assertProblem(t, resp, body, http.StatusUnauthorized, "Bearer")
	resp, body = put(`{"error_rate":1}`, "Authorization", "Bearer wrong")
	assertProblem(t, resp, body, http.StatusUnauthorized, "")
	resp, body = put(`{"error_rate":7}`, "Authorization", bearer)
	assertProblem(t, resp, body, http.StatusBadRequest, "error_rate")

	// Injected errors hit the app routes, never the controls or probes.
	if resp, _ = put(`{"error_rate":1,"latency":"30ms"}`, "Authorization", bearer); resp.StatusCode != http.StatusOK {
		t.Fatalf("set faults: %d", resp.StatusCode)
	}
	start := time.Now()
	resp, body = h.do(t, http.MethodGet, "/api/v1/info", nil)
	assertProblem(t, resp, body, http.StatusServiceUnavailable, "on purpose")
	if time.Since(start) < 30*time.Millisecond {
		t.Fatal("latency was not injected")
	}
	if got := proctest.Status(h.URL + "/healthz"); got != http.StatusOK {
		t.Fatalf("healthz under injected faults: %d", got)
	}
	_, body = h.do(t, http.MethodGet, "/admin", nil)
	if !strings.Contains(body, "Log in") {
		t.Fatalf("admin page not reachable under faults:\n%s", body)
	}

	// Readiness: forced off and back on, seen by the probe. The answer
	// and the panel say when it would have ended by itself.
	before := time.Now()
	resp, body = put(`{"error_rate":0,"latency":"0s","unready":true}`, "Authorization", bearer)
	after := time.Now()
	var st InfoDemo
	if err := json.Unmarshal([]byte(body), &st); err != nil || resp.StatusCode != http.StatusOK || !st.Unready {
		t.Fatalf("set unready: %d %s", resp.StatusCode, body)
	}
	if end := st.UnreadyUntil; end.Before(before.Add(demo.DefaultUnreadyFor)) || end.After(after.Add(demo.DefaultUnreadyFor)) {
		t.Fatalf("unready_until %v, want %v after the request", end, demo.DefaultUnreadyFor)
	}
	if got := proctest.Status(h.URL + "/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("readyz while forced unready: %d", got)
	}
	_, body = h.do(t, http.MethodGet, "/", nil)
	if !strings.Contains(body, "forced by the demo controls until "+st.UnreadyUntil.Format("15:04:05 UTC")) {
		t.Fatalf("panel does not show the forced unreadiness and its end:\n%s", body)
	}
	put(`{"unready":false}`, "Authorization", bearer)
	if got := proctest.Status(h.URL + "/readyz"); got != http.StatusOK {
		t.Fatalf("readyz after recovering: %d", got)
	}
	for _, bad := range []struct{ body, detail string }{
		{`{"unready":true,"unready_for":"soon"}`, "unready_for"},
		{`{"unready":true,"unready_for":"5h"}`, "unready_for 5h0m0s: want 1s to 10m0s"},
		{`{"unready":true,"unready_for":"0s"}`, "unready_for 0s"},
		{`{"unready_for":"30s"}`, `"unready": true`},
		{`{"unready":false,"unready_for":"30s"}`, `"unready": true`},
	} {
		resp, body = put(bad.body, "Authorization", bearer)
		assertProblem(t, resp, body, http.StatusBadRequest, bad.detail)
	}

	// Nobody recovers it this time: out of its Service, the pod could not
	// be reached to be told. It turns ready again by itself.
	resp, body = put(`{"unready":true,"unready_for":"1s"}`, "Authorization", bearer)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"unready":true`) {
		t.Fatalf("unready for 1s: %d %s", resp.StatusCode, body)
	}
	proctest.WaitFor(t, "readiness to come back by itself", 30*time.Second, func() bool { return proctest.Status(h.URL+"/readyz") == http.StatusOK })
	if _, body = h.do(t, http.MethodGet, "/api/v1/admin/demo", nil, "Authorization", bearer); !strings.Contains(body, `"unready":false`) || strings.Contains(body, "unready_until") {
		t.Fatalf("demo state after the expiry: %s", body)
	}

	// Crash is only reachable with the token.
	if resp, _ = h.do(t, http.MethodPost, "/api/v1/admin/crash", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("crash without token: %d", resp.StatusCode)
	}
	if resp, _ = h.do(t, http.MethodPost, "/api/v1/admin/crash", nil, "Authorization", bearer); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("crash: %d", resp.StatusCode)
	}
	proctest.WaitFor(t, "crash", 10*time.Second, func() bool { return h.crashed.Load() == 1 })

	// Without a token the controls are disabled, with a clear reason.
	empty := ""
	h.token.Store(&empty)
	resp, body = put(`{"unready":true}`, "Authorization", "Bearer ")
	assertProblem(t, resp, body, http.StatusForbidden, "admin-token")
}

func TestLoginFormSession(t *testing.T) {
	h := newHarness(t)
	post := func(path, form string, cookie *http.Cookie) (*reply, string) {
		headers := []string{"Content-Type", "application/x-www-form-urlencoded"}
		if cookie != nil {
			headers = append(headers, "Cookie", cookie.Name+"="+cookie.Value)
		}
		return h.do(t, http.MethodPost, path, strings.NewReader(form), headers...)
	}
	if resp, _ := post("/admin/login", "token=nope", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	resp, _ := post("/admin/login", "token="+testToken, nil)
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %d %v", resp.StatusCode, resp.Cookies())
	}
	session := resp.Cookies()[0]
	if resp, _ = post("/admin/demo", "action=faults&error_rate=100&latency=", session); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("faults form: %d", resp.StatusCode)
	}
	if resp, _ = h.do(t, http.MethodGet, "/", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("gallery with 100%% errors: %d", resp.StatusCode)
	}
	if resp, body := post("/admin/demo", "action=faults&error_rate=ten", session); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "percentage") {
		t.Fatalf("bad fault form: %d", resp.StatusCode)
	}
	if resp, _ = post("/admin/demo", "action=clear", session); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("clear: %d", resp.StatusCode)
	}
	if resp, _ = h.do(t, http.MethodGet, "/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("gallery after clearing: %d", resp.StatusCode)
	}
	if resp, body := post("/admin/demo", "action=unready&unready_for=forever", session); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "unready_for") {
		t.Fatalf("unready for forever: %d", resp.StatusCode)
	}
	if resp, _ = post("/admin/demo", "action=unready&unready_for=2m", session); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("unready form: %d", resp.StatusCode)
	}
	if _, body := h.do(t, http.MethodGet, "/admin", nil, "Cookie", session.Name+"="+session.Value); !strings.Contains(body, "It expires") || !strings.Contains(body, `id="unready-until"`) {
		t.Fatalf("admin page does not say when readiness comes back:\n%s", body)
	}
	if resp, _ = post("/admin/demo", "action=ready", session); resp.StatusCode != http.StatusSeeOther || proctest.Status(h.URL+"/readyz") != http.StatusOK {
		t.Fatalf("recover form: %d", resp.StatusCode)
	}

	// Rotating the token ends the session.
	rotated := "rotated-token"
	h.token.Store(&rotated)
	if resp, _ = post("/admin/demo", "action=unready", session); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old session after rotation: %d", resp.StatusCode)
	}
}

func TestGalleryDegradesWhenImageprocIsDown(t *testing.T) {
	h := newHarness(t)
	h.imageproc.Signal(t, syscall.SIGTERM)
	h.imageproc.Wait(t, 10*time.Second)
	resp, body := h.do(t, http.MethodGet, "/", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `id="degraded"`) || !strings.Contains(body, "imageproc unavailable") {
		t.Fatalf("gallery with imageproc down: %d\n%s", resp.StatusCode, body)
	}
	// Pages that need no photo still work.
	if resp, _ = h.do(t, http.MethodGet, "/admin", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("admin page with imageproc down: %d", resp.StatusCode)
	}
	h.checker.Refresh()
	proctest.WaitFor(t, "readiness to fail", 10*time.Second, func() bool { return proctest.Status(h.URL+"/readyz") == http.StatusServiceUnavailable })
}
