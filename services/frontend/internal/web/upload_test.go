package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/imageproctest"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// TestUploadNamesCannotDisguiseThemselves: U+202E makes
// "photo\u202Egnp.exe" show as "photoexe.png". Names lose their bidi
// controls and other invisible characters on the way in, through the form
// and the API, and again on the way out, for photos stored before.
func TestUploadNamesCannotDisguiseThemselves(t *testing.T) {
	h := newHarness(t)
	photo := pipelinetest.JPEG(64, 48, 7)

	b, ct := form(t, "file", "photo\u202Egnp.exe", photo)
	resp, body := h.do(t, http.MethodPost, "/api/v1/images", b, "Content-Type", ct)
	if got := jsonField(t, body, "image", "filename"); resp.StatusCode != http.StatusCreated || got != "photognp.exe" {
		t.Fatalf("form upload: %d, filename %+q", resp.StatusCode, got)
	}
	for _, tt := range []struct{ sent, want string }{
		{"\u2066invoice\u2069\u200B.jpg", "invoice.jpg"},
		// Not UTF-8 (a Latin-1 client): a protobuf string could not carry it.
		{"caf\xe9.jpg", "caf\uFFFD.jpg"},
	} {
		resp, body = h.do(t, http.MethodPost, "/api/v1/images?filename="+url.QueryEscape(tt.sent), strings.NewReader(string(photo)), "Content-Type", "image/jpeg")
		if got := jsonField(t, body, "image", "filename"); resp.StatusCode != http.StatusCreated || got != tt.want {
			t.Fatalf("raw upload named %+q: %d %s", tt.sent, resp.StatusCode, body)
		}
	}

	// A gRPC client reaches imageproc without the frontend.
	conn, err := grpc.NewClient(h.imageprocAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	img, err := imageproctest.Upload(t.Context(), imageprocv1.NewImageServiceClient(conn), "stored\u202Egepj.exe", photo)
	if err != nil {
		t.Fatal(err)
	}
	_, gallery := h.do(t, http.MethodGet, "/", nil)
	_, detail := h.do(t, http.MethodGet, "/images/"+img.GetId(), nil)
	for page, html := range map[string]string{"gallery": gallery, "detail": detail} {
		if strings.ContainsAny(html, "\u202E\u2066\u2069\u200B") || !strings.Contains(html, "storedgepj.exe") {
			t.Errorf("the %s page shows a name with its bidi controls, or not at all:\n%s", page, html)
		}
	}
	if !strings.Contains(gallery, "photognp.exe") || !strings.Contains(gallery, "invoice.jpg") {
		t.Errorf("gallery lacks the uploads:\n%s", gallery)
	}
}

// failingBody gives its bytes, then fails with err together with the last
// of them, and cancels the request the way net/http does on a read error.
type failingBody struct {
	data   []byte
	err    error
	cancel context.CancelFunc
}

func (b *failingBody) Read(p []byte) (int, error) {
	n := copy(p, b.data)
	b.data = b.data[n:]
	if len(b.data) > 0 {
		return n, nil
	}
	b.cancel()
	// Give the gRPC stream time to see the cancellation, as it has when
	// the handler gets around to sending.
	time.Sleep(100 * time.Millisecond)
	return n, b.err
}

// TestUploadBodyFailureIsTheAnswer: a body that fails (too slow, here)
// with bytes still to send is answered with its own problem, not with
// imageproc's "canceled": net/http has canceled the request by then, so
// sending those bytes would fail first (the process test
// TestProcessSlowUploadsAreCut met it, now and then, as a 503).
func TestUploadBodyFailureIsTheAnswer(t *testing.T) {
	ip := imageproctest.Start(t, "imageproc-upload-0", "")
	conn, err := grpc.NewClient(ip.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	slow := Pace{MinRate: 1024, Window: time.Second}.tooSlow()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	body := &failingBody{data: pipelinetest.JPEG(64, 48, 3)[:100], err: slow, cancel: cancel}
	_, err = sendUpload(ctx, imageprocv1.NewImageServiceClient(conn), "slow.jpg", body, 1<<20)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusRequestTimeout {
		t.Fatalf("a body too slow: %v, want its 408 problem", err)
	}
}
