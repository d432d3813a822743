package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/disintegration/imaging"
	"golang.org/x/image/draw"

	"github.com/kubelab/kubelab/services/imageproc/pipeline"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// The thumbnail benchmarks decode a 3000×2000 JPEG and fit it in 256 px,
// with kubelab's pipeline and, in the same run on the same bytes, with
// reference resizers and libvips's vipsthumbnail. Compare them with
// benchstat or by eye; quote 1-core figures (make bench pins GOMAXPROCS=1
// to core 0).
var photos = [][]byte{pipelinetest.JPEG(3000, 2000, 1), pipelinetest.JPEG(3000, 2000, 2)}

const thumbSize = 256

func BenchmarkThumbnail(b *testing.B) {
	spec := pipeline.Spec{Ops: []pipeline.Op{pipeline.Thumbnail{Size: thumbSize}}}
	// What imageproc runs: decoded at the scale the thumbnail allows
	// (1/4 here), resized, encoded as JPEG, as vipsthumbnail does too.
	b.Run("pipeline", func(b *testing.B) {
		run := pipeline.Spec{Ops: spec.Ops, Format: pipeline.JPEG, Quality: pipeline.DefaultQuality}
		for i := 0; b.Loop(); i++ {
			if _, err := pipeline.Run(context.Background(), io.Discard, bytes.NewReader(photos[i%len(photos)]), run, pipeline.Limits{MaxPixels: 50_000_000}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
	})
	// The pipeline before shrink-on-load: image/jpeg decodes every pixel.
	b.Run("pipeline-full-decode", func(b *testing.B) {
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
	b.Run("vipsthumbnail", benchVipsThumbnail)
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

// benchVipsThumbnail runs libvips's vipsthumbnail on the same photos,
// written to files: one process for all b.N thumbnails, so its start-up is
// shared as in a batch, and one thread (VIPS_CONCURRENCY=1), so the figure
// is per core like the others. The benchmark installs nothing.
func benchVipsThumbnail(b *testing.B) {
	vips, err := exec.LookPath("vipsthumbnail")
	if err != nil {
		b.Skip("vipsthumbnail is not on PATH: no libvips reference in this run (Debian's libvips-tools has it)")
	}
	dir := b.TempDir()
	var args []string
	for i := range b.N {
		// A file per thumbnail, as vipsthumbnail names its output after
		// its input.
		name := filepath.Join(dir, fmt.Sprintf("photo%d.jpg", i))
		if err := os.WriteFile(name, photos[i%len(photos)], 0o600); err != nil {
			b.Fatal(err)
		}
		args = append(args, name)
	}
	args = append(args, "-s", strconv.Itoa(thumbSize), "-o", "%s-thumb.jpg[Q=85]")
	cmd := exec.Command(vips, args...)
	cmd.Env = append(os.Environ(), "VIPS_CONCURRENCY=1")
	b.ResetTimer()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("vipsthumbnail: %v: %s", err, out)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
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
// Lanczos result on the full decode, as mean absolute difference in levels
// (0–255): the pipeline on image/jpeg's full decode, and the pipeline as
// Run runs it, from the reduced decode (its output as PNG, so that no
// JPEG encoding adds to the difference).
func BenchmarkThumbnailQuality(b *testing.B) {
	img, err := jpeg.Decode(bytes.NewReader(photos[0]))
	if err != nil {
		b.Fatal(err)
	}
	spec := pipeline.Spec{Ops: []pipeline.Op{pipeline.Thumbnail{Size: thumbSize}}, Format: pipeline.PNG}
	var mad, madReduced float64
	for b.Loop() {
		out, err := pipeline.Apply(context.Background(), img, spec, 50_000_000)
		if err != nil {
			b.Fatal(err)
		}
		// Same output size for both, so rounding of the fit does not count.
		ref := imaging.Resize(img, out.Rect.Dx(), out.Rect.Dy(), imaging.Lanczos)
		mad = pipeline.MeanAbsDiff(out, ref)
		var buf bytes.Buffer
		if _, err := pipeline.Run(context.Background(), &buf, bytes.NewReader(photos[0]), spec, pipeline.Limits{MaxPixels: 50_000_000}); err != nil {
			b.Fatal(err)
		}
		reduced, err := png.Decode(&buf)
		if err != nil {
			b.Fatal(err)
		}
		madReduced = pipeline.MeanAbsDiff(reduced, ref)
	}
	b.ReportMetric(mad, "mad-vs-imaging-lanczos")
	b.ReportMetric(madReduced, "mad-reduced-vs-imaging-lanczos")
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
