package server_test

import (
	"testing"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// TestUploadNameIsCleaned: gRPC clients reach imageproc without the
// frontend, so imageproc cleans the name it stores (filename.Clean):
// "photo\u202Egnp.exe" would otherwise show as "photoexe.png".
func TestUploadNameIsCleaned(t *testing.T) {
	e := start(t, defaultLimits)
	img, err := e.upload(ctx(t), "C:\\fotos\\photo\u202Egnp.exe", pipelinetest.JPEG(32, 24, 1))
	if err != nil {
		t.Fatal(err)
	}
	if img.GetFilename() != "photognp.exe" {
		t.Fatalf("stored as %+q, want %q", img.GetFilename(), "photognp.exe")
	}
}
