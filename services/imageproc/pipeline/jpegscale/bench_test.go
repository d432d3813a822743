package jpegscale

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"testing"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// BenchmarkDecode decodes a 3000×2000 photo-like JPEG (4:2:0, quality 90)
// with image/jpeg and at each scale here, in the same run: scale 1 shows
// the decoder's own speed, the others what shrink-on-load saves. Quote
// 1-core figures (GOMAXPROCS=1 taskset -c 0).
func BenchmarkDecode(b *testing.B) {
	data := pipelinetest.JPEG(3000, 2000, 1)
	b.Run("image-jpeg", func(b *testing.B) {
		for b.Loop() {
			if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
	})
	for _, denom := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("jpegscale-1:%d", denom), func(b *testing.B) {
			for b.Loop() {
				if _, err := Decode(bytes.NewReader(data), denom); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
