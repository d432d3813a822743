package pipeline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

const mib = 1 << 20

// The image: 49 MP, under MAX_PIXELS, 380 KB as a file, 392 MB
// decoded. With imageproc's 512 MiB limit it must be refused, and refused
// from its header: decoding it first would be the very allocation the
// budget is there to prevent.
func TestDeepPNGRefusedBeforeDecoding(t *testing.T) {
	data := pipelinetest.DeepPNG(7000, 7000)
	spec := Spec{Ops: []Op{Thumbnail{Size: 256}}, Format: JPEG, Quality: 85}
	lim := Limits{MaxPixels: testMaxPixels, MaxMemory: MemoryBudget(512*mib, 1), MaxWork: DefaultMaxWork}

	allocated := allocatedBy(func() {
		_, err := Run(t.Context(), io.Discard, bytes.NewReader(data), spec, lim)
		if !errors.Is(err, ErrOverBudget) || !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrOverBudget (an ErrTooLarge)", err)
		}
		for _, want := range []string{"thumbnail(256)", "7000x7000 png", "392 MB for the decoded image", "416 MB"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})
	if allocated > 4*mib {
		t.Fatalf("refusing allocated %d bytes; the header alone should be read", allocated)
	}

	// The same image fits a budget large enough for it: the refusal is
	// the budget's, not a pixel limit's.
	lim.MaxMemory = 1 << 30
	info, err := Probe(bytes.NewReader(data), testMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Estimate(info, spec, testMaxPixels)
	if err != nil || c.Decoded != 7000*7000*8 || c.Check(lim, "") != nil {
		t.Fatalf("estimate %+v, %v; want 392 MB decoded, within 1 GiB", c, err)
	}
}

// allocatedBy is how many bytes f allocates on the heap.
func allocatedBy(f func()) int64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// The estimate follows what a run really allocates, for each decoder and
// kind of operation. A run allocates at least its peak, and with one
// operation nearly everything it allocates is alive at once, so this shows
// the estimate neither misses memory nor wildly overstates it.
func TestEstimateFollowsAllocations(t *testing.T) {
	src := pipelinetest.Photo(600, 400, 1)
	encode := func(img image.Image, enc func(io.Writer, image.Image) error) []byte {
		var b bytes.Buffer
		if err := enc(&b, img); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	withAlpha := image.NewNRGBA(src.Rect)
	copy(withAlpha.Pix, src.Pix)
	withAlpha.Pix[3] = 100
	gray := image.NewGray(src.Rect)
	for y := range src.Rect.Dy() {
		for x := range src.Rect.Dx() {
			gray.Set(x, y, color.GrayModel.Convert(src.At(x, y)))
		}
	}
	// Paletted already, so the GIF encoder does not dither (slow).
	grays := make(color.Palette, 256)
	for i := range grays {
		grays[i] = color.Gray{uint8(i)}
	}
	paletted := &image.Paletted{Pix: gray.Pix, Stride: gray.Stride, Rect: gray.Rect, Palette: grays}
	pngEnc := func(w io.Writer, m image.Image) error { return png.Encode(w, m) }
	files := map[string][]byte{
		"jpeg 4:2:0": encode(src, func(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, nil) }),
		"jpeg gray":  encode(gray, func(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, nil) }),
		"png rgb":    encode(src, pngEnc),
		"png rgba":   encode(withAlpha, pngEnc),
		"png 16-bit": pipelinetest.DeepPNG(600, 400),
		"gif":        encode(paletted, func(w io.Writer, m image.Image) error { return gif.Encode(w, m, nil) }),
	}
	specs := []string{"thumbnail(128)|format(jpeg,85)", "blur(2)|format(jpeg,85)", "rotate(90)|format(jpeg,85)", "resize(300,0,fit)|format(jpeg,85)"}
	for name, data := range files {
		for _, text := range specs {
			spec, err := ParseSpec(text)
			if err != nil {
				t.Fatal(err)
			}
			info, err := Probe(bytes.NewReader(data), testMaxPixels)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Estimate(info, spec, testMaxPixels)
			if err != nil {
				t.Fatal(err)
			}
			allocated := allocatedBy(func() {
				if _, err := Run(t.Context(), io.Discard, bytes.NewReader(data), spec, Limits{MaxPixels: testMaxPixels}); err != nil {
					t.Fatal(err)
				}
			})
			if ratio := float64(c.Memory) / float64(allocated); ratio < 0.9 || ratio > 1.6 {
				t.Errorf("%s, %s: estimated %d bytes, the run allocated %d (ratio %.2f, want 0.9–1.6)", name, text, c.Memory, allocated, ratio)
			}
		}
	}
}

// jpegWithSize is a real JPEG whose frame header claims w×h: enough for
// estimates, which read headers only.
func jpegWithSize(t *testing.T, w, h int, progressive bool) []byte {
	t.Helper()
	b := append([]byte{}, pipelinetest.JPEG(64, 48, 1)...)
	i := bytes.Index(b, []byte{0xFF, 0xC0})
	if i < 0 {
		t.Fatal("no SOF0")
	}
	binary.BigEndian.PutUint16(b[i+5:], uint16(h))
	binary.BigEndian.PutUint16(b[i+7:], uint16(w))
	if progressive {
		b[i+1] = 0xC2
	}
	return b
}

func TestJPEGDecodingFromHeader(t *testing.T) {
	for _, tt := range []struct {
		progressive bool
		want        int64
	}{
		// 4:2:0 in whole 16×16 MCUs: 1.5 samples a pixel.
		{false, 6000 * 4000 * 3 / 2},
		// and the progressive decoder's coefficients, 4 bytes a sample.
		{true, 6000 * 4000 * 3 / 2 * 5},
	} {
		info, err := Probe(bytes.NewReader(jpegWithSize(t, 6000, 4000, tt.progressive)), testMaxPixels)
		if err != nil {
			t.Fatal(err)
		}
		d := info.decoding
		if d.image+d.scratch != tt.want || d.kind != kindYCbCr || d.sx != 2 || d.sy != 2 {
			t.Errorf("progressive=%v: %+v, want %d bytes, YCbCr 4:2:0", tt.progressive, d, tt.want)
		}
	}
	// A frame header out of reach: assume the costliest.
	if d := jpegDecoding([]byte{0xFF, 0xD8}, 100, 100); d.image+d.scratch < 100*100*19 {
		t.Errorf("unknown frame: %+v, want the costliest case", d)
	}
}

func TestWorkBudget(t *testing.T) {
	lim := Limits{MaxPixels: testMaxPixels, MaxMemory: MemoryBudget(512*mib, 1), MaxWork: DefaultMaxWork}
	// The blur: σ 50 on 4 MP, 8 s of a core.
	_, err := Run(t.Context(), io.Discard, bytes.NewReader(jpegWithSize(t, 2000, 2000, false)),
		Spec{Ops: []Op{Blur{Sigma: 50}}, Format: JPEG, Quality: 85}, lim)
	if !errors.Is(err, ErrOverBudget) || !strings.Contains(err.Error(), "blur(50) the most") {
		t.Fatalf("blur(50) of 4 MP: err = %v, want ErrOverBudget naming the blur", err)
	}

	// What the frontend's presets and the worker ask of the largest photos
	// MAX_PIXELS allows fits the default budget of the 512 MiB manifest.
	for _, text := range []string{
		"thumbnail(256)|format(jpeg,85)",
		"resize(1024,1024,fit)|blur(3)|format(jpeg,85)",
		"resize(800,800,fit)|sharpen(1,1)|format(png)",
		"resize(1600,0,fit)|grayscale|format(jpeg,85)",
		"resize(2000,2000,fit)|rotate(90)|format(jpeg,85)",
	} {
		spec, err := ParseSpec(text)
		if err != nil {
			t.Fatal(err)
		}
		info, err := Probe(bytes.NewReader(jpegWithSize(t, 10000, 5000, false)), testMaxPixels)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Estimate(info, spec, testMaxPixels)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Check(lim, text); err != nil {
			t.Errorf("50 MP JPEG: %v", err)
		}
	}
}

func TestMemoryBudget(t *testing.T) {
	// (512 MiB × 9/10 − 64 MiB) / 1, about 397 MiB.
	if got := MemoryBudget(512*mib, 1); got != 416_074_957 {
		t.Errorf("512 MiB, 1 transform: %d", got)
	}
	if a, b := MemoryBudget(2<<30, 2), MemoryBudget(2<<30, 1); a != b/2 {
		t.Errorf("two transforms share the budget: %d, %d", a, b)
	}
	if MemoryBudget(0, 4) != 0 {
		t.Error("no limit known must mean no bound")
	}
	if MemoryBudget(32*mib, 1) != 1 {
		t.Error("a limit below the reserve must refuse every transform")
	}
}
