package pipeline_test

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"testing"

	"github.com/disintegration/imaging"
	"golang.org/x/image/draw"

	"github.com/kubelab/kubelab/services/imageproc/pipeline"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// The thumbnail benchmarks decode a 3000×2000 JPEG and fit it in 256 px,
// with kubelab's pipeline and, in the same run on the same bytes, with two
// reference resizers. Compare them with benchstat or by eye; quote 1-core
// figures (make bench pins GOMAXPROCS=1 to core 0).
var photos = [][]byte{pipelinetest.JPEG(3000, 2000, 1), pipelinetest.JPEG(3000, 2000, 2)}

const thumbSize = 256

func BenchmarkThumbnail(b *testing.B) {
	spec := pipeline.Spec{Ops: []pipeline.Op{pipeline.Thumbnail{Size: thumbSize}}}
	b.Run("pipeline", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			img, _, err := pipeline.DecodeBytes(photos[i%len(photos)], 50_000_000)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := pipeline.Apply(context.Background(), img, spec, 50_000_000); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
	})
	b.Run("imaging-lanczos", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			img, err := jpeg.Decode(bytes.NewReader(photos[i%len(photos)]))
			if err != nil {
				b.Fatal(err)
			}
			imaging.Fit(img, thumbSize, thumbSize, imaging.Lanczos)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
	})
	b.Run("xdraw-catmullrom", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			img, err := jpeg.Decode(bytes.NewReader(photos[i%len(photos)]))
			if err != nil {
				b.Fatal(err)
			}
			dst := image.NewRGBA(image.Rect(0, 0, thumbSize, thumbSize*2/3))
			draw.CatmullRom.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
	})
	b.Run("decode-only", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := jpeg.Decode(bytes.NewReader(photos[i%len(photos)])); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
	})
}

// BenchmarkThumbnailResizeOnly leaves decoding out, to show the resizers alone.
func BenchmarkThumbnailResizeOnly(b *testing.B) {
	img, err := jpeg.Decode(bytes.NewReader(photos[0]))
	if err != nil {
		b.Fatal(err)
	}
	spec := pipeline.Spec{Ops: []pipeline.Op{pipeline.Thumbnail{Size: thumbSize}}}
	b.Run("pipeline", func(b *testing.B) {
		for b.Loop() {
			if _, err := pipeline.Apply(context.Background(), img, spec, 50_000_000); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("imaging-lanczos", func(b *testing.B) {
		for b.Loop() {
			imaging.Fit(img, thumbSize, thumbSize, imaging.Lanczos)
		}
	})
}

// BenchmarkThumbnailQuality reports how far each resizer is from imaging's
// Lanczos result, as mean absolute difference in levels (0–255).
func BenchmarkThumbnailQuality(b *testing.B) {
	img, err := jpeg.Decode(bytes.NewReader(photos[0]))
	if err != nil {
		b.Fatal(err)
	}
	var mad float64
	for b.Loop() {
		out, err := pipeline.Apply(context.Background(), img, pipeline.Spec{Ops: []pipeline.Op{pipeline.Thumbnail{Size: thumbSize}}}, 50_000_000)
		if err != nil {
			b.Fatal(err)
		}
		// Same output size for both, so rounding of the fit does not count.
		ref := imaging.Resize(img, out.Rect.Dx(), out.Rect.Dy(), imaging.Lanczos)
		mad = pipeline.MeanAbsDiff(out, ref)
	}
	b.ReportMetric(mad, "mad-vs-imaging-lanczos")
}

// BenchmarkBlur blurs a decoded 3000×2000 photo (σ = 5), with imaging's
// Gaussian blur as the reference in the same run; B/op shows the working
// memory of one blur.
func BenchmarkBlur(b *testing.B) {
	img, err := jpeg.Decode(bytes.NewReader(photos[0]))
	if err != nil {
		b.Fatal(err)
	}
	spec := pipeline.Spec{Ops: []pipeline.Op{pipeline.Blur{Sigma: 5}}}
	b.Run("pipeline", func(b *testing.B) {
		for b.Loop() {
			if _, err := pipeline.Apply(context.Background(), img, spec, 50_000_000); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("imaging", func(b *testing.B) {
		for b.Loop() {
			imaging.Blur(img, 5)
		}
	})
}
