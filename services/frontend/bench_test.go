package main_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

// BenchmarkUpload20MB streams a 20 MB photo through the real frontend
// binary into imageproc and reports the frontend's peak memory growth:
// the upload is relayed in chunks, never held whole.
func BenchmarkUpload20MB(b *testing.B) {
	s := startStack(b, 1, "MAX_UPLOAD_BYTES=67108864")
	photo := pipelinetest.LargeJPEG(20 << 20)
	pid := s.frontend.Cmd.Process.Pid
	var worst int64
	b.SetBytes(int64(len(photo)))
	for b.Loop() {
		if err := proctest.ResetPeakRSS(pid); err != nil {
			b.Skip(err)
		}
		before, err := proctest.PeakRSS(pid)
		if err != nil {
			b.Skip(err)
		}
		resp, err := http.Post(s.url+"/api/v1/images?filename=big.jpg", "image/jpeg", bytes.NewReader(photo)) //nolint:noctx // benchmark
		if err != nil {
			b.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("upload: %d", resp.StatusCode)
		}
		after, _ := proctest.PeakRSS(pid)
		worst = max(worst, after-before)
	}
	b.ReportMetric(float64(worst)/(1<<20), "frontend-peak-rss-growth-MB")
}
