package web

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/frontend/internal/demo"
	"github.com/kubelab/kubelab/services/frontend/internal/locale"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// FuzzReadUpload feeds arbitrary bodies and content types to the upload
// parser: it must either find a file or fail with a clear 4xx, never panic
// or read past its limit.
func FuzzReadUpload(f *testing.F) {
	body, ct := form(f, "file", "a.jpg", pipelinetest.JPEG(8, 8, 1))
	f.Add(ct, body.Bytes(), "a.jpg")
	f.Add("image/png", pipelinetest.PNG(4, 4, 2), "raw.png")
	f.Add("multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../etc/passwd\"\r\n\r\nzz\r\n--x--\r\n"), "")
	f.Add("multipart/form-data", []byte("--\r\n"), "")
	f.Add("text/plain", []byte("hello"), "x")
	f.Add("", []byte{}, "")
	catalog, err := locale.Load()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, contentType string, data []byte, filename string) {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/images", bytes.NewReader(data))
		r.Header.Set("Content-Type", contentType)
		q := r.URL.Query()
		q.Set("filename", filename)
		r.URL.RawQuery = q.Encode()
		r.Body = http.MaxBytesReader(nil, r.Body, int64(len(data)))
		name, file, err := readUpload(r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status < 400 || e.Status >= 500 {
				t.Fatalf("unclear error %#v", err)
			}
			// Said in both languages, each message found.
			for _, p := range []*locale.Printer{catalog.English(), catalog.Printer("ja")} {
				if d := e.detail(p); d == "" || d == e.Msg {
					t.Fatalf("error %#v says %q in %s", err, d, p.Lang)
				}
			}
			return
		}
		n, _ := io.Copy(io.Discard, file)
		if n > int64(len(data)) {
			t.Fatalf("read %d bytes from a %d-byte body", n, len(data))
		}
		_ = name // any name is fine: upload cleans it, templates escape it
	})
}

// FuzzTransformJSON feeds arbitrary JSON to the transform API's decoder:
// bad input is a 400 (or 413), never a panic.
func FuzzTransformJSON(f *testing.F) {
	f.Add([]byte(`{"operations":[{"thumbnail":{"size":64}}],"output":{"format":"FORMAT_PNG"}}`))
	f.Add([]byte(`{"operations":[{"resize":{"width":1,"height":2,"mode":"RESIZE_MODE_FILL"}},{"blur":{"sigma":1e308}}]}`))
	f.Add([]byte(`{"operatoins":[]}`))
	f.Add([]byte(`[`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/api/v1/images/x/transforms", bytes.NewReader(data))
		err := readProto(w, r, &imageprocv1.TransformRequest{})
		if err == nil {
			return
		}
		e, internal := classify(err)
		if internal || (e.Status != http.StatusBadRequest && e.Status != http.StatusRequestEntityTooLarge) {
			t.Fatalf("%q: error %v classified as %d", data, err, e.Status)
		}
	})
}

// FuzzParseFaults: whatever the demo form holds, the controls end up
// either exactly as parsed or unchanged with an error.
func FuzzParseFaults(f *testing.F) {
	f.Add("10", "250ms")
	f.Add("", "")
	f.Add("NaN", "-1s")
	f.Add("1e309", "99999h")
	f.Fuzz(func(t *testing.T, rate, latency string) {
		ch, err := parseFaults(rate, latency)
		if err != nil {
			return
		}
		c := demo.New(slog.New(slog.DiscardHandler), func(bool) {})
		st, err := c.Apply(t.Context(), ch)
		if err != nil {
			if c.State().Active() {
				t.Fatalf("rejected %v, %v (%v) but changed the state to %+v", *ch.ErrorRate, *ch.Latency, err, c.State())
			}
			return
		}
		if want := (demo.State{ErrorRate: *ch.ErrorRate, Latency: *ch.Latency}); st != want || c.State() != want {
			t.Fatalf("set %+v, state is %+v", want, c.State())
		}
	})
}
