package main_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

// The attack: a 380 KB PNG, 7000×7000 at 16 bits per channel with
// alpha, legal under MAX_PIXELS, took imageproc from 23 MB to 603 MB for
// one thumbnail, past the manifest's 512 MiB limit. With the limit the
// Downward API gives (MEMORY_LIMIT), the server refuses it from its
// header, with a message saying why, and its memory stays where it was.
func TestProcessMemoryBudgetRefusesDeepImages(t *testing.T) {
	const manifestLimit = "536870912" // 512Mi, as manifests/imageproc/deployment.yaml
	deep := pipelinetest.DeepPNG(7000, 7000)
	data := t.TempDir()

	// A pod with 4 GiB accepts it (a thumbnail fits its budget)...
	roomy := startProc(t, "DATA_DIR="+data, "MEMORY_LIMIT=4294967296", "TRANSFORM_CONCURRENCY=1", "DRAIN_DELAY=0s")
	img, err := upload(t.Context(), roomy.client(t), deep)
	if err != nil {
		t.Fatalf("upload with a 4 GiB limit: %v", err)
	}
	roomy.Signal(t, syscall.SIGTERM)
	if code := roomy.Wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}

	// ...then the same volume is served by a pod with the manifest's limit,
	// as after an edit of its resources.
	p := startProc(t, "DATA_DIR="+data, "MEMORY_LIMIT="+manifestLimit, "TRANSFORM_CONCURRENCY=1")
	c := p.client(t)
	pid := p.Cmd.Process.Pid
	if err := proctest.ResetPeakRSS(pid); err != nil {
		t.Fatal(err)
	}
	_, err = c.Transform(t.Context(), &imageprocv1.TransformRequest{ImageId: img.GetId(),
		Operations: []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Thumbnail{Thumbnail: &imageprocv1.Thumbnail{Size: 256}}}}})
	wantRefusal(t, "thumbnail of the deep PNG", err, "thumbnail(256)", "7000x7000 png", "392 MB for the decoded image", "512 MiB memory limit")
	// A new upload of it is refused at once: no page could show it.
	_, err = upload(t.Context(), c, deep)
	wantRefusal(t, "upload of the deep PNG", err, "a thumbnail of this 7000x7000 png", "392 MB for the decoded image")

	peak, err := proctest.PeakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Decoding would have taken 392 MB at least; the server idles at ~25.
	if peak > 128<<20 {
		t.Fatalf("peak RSS %d MiB while refusing; the image was decoded", peak>>20)
	}
	t.Logf("peak RSS while refusing: %d MiB", peak>>20)

	// The budget bounds work as well as memory: sixteen blurs of σ 50 on a
	// small photo are refused, a thumbnail of it is made.
	small, err := upload(t.Context(), c, pipelinetest.JPEG(640, 480, 7))
	if err != nil {
		t.Fatal(err)
	}
	var blurs []*imageprocv1.Operation
	for range 16 {
		blurs = append(blurs, &imageprocv1.Operation{Op: &imageprocv1.Operation_Blur{Blur: &imageprocv1.Blur{Sigma: 50}}})
	}
	_, err = c.Transform(t.Context(), &imageprocv1.TransformRequest{ImageId: small.GetId(), Operations: blurs})
	wantRefusal(t, "16 × blur(50)", err, "work units", "blur(50) the most")
	if _, err := c.Transform(t.Context(), &imageprocv1.TransformRequest{ImageId: small.GetId(),
		Operations: []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Thumbnail{Thumbnail: &imageprocv1.Thumbnail{Size: 256}}}}}); err != nil {
		t.Fatalf("thumbnail of a photo within the budget: %v", err)
	}
}

func wantRefusal(t *testing.T, what string, err error, says ...string) {
	t.Helper()
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("%s: %v, want ResourceExhausted", what, err)
	}
	for _, s := range says {
		if !strings.Contains(status.Convert(err).Message(), s) {
			t.Errorf("%s: message %q does not say %q", what, status.Convert(err).Message(), s)
		}
	}
}
