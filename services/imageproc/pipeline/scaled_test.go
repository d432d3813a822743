package pipeline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"testing"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/jpegscale"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// maxReducedMAD bounds how far, in levels, a result from a reduced decode
// may be from the same spec run on the full decode. The reduced decode's
// samples are block averages, up to the frequencies the reduced inverse DCT
// drops, and Lanczos then reduces at least 2× more (loadMargin), so what
// differs is mostly rounding and the finest texture. Measured on these
// photos: 0.4 levels at 1/2, 0.7 at 1/4, 1.2 at 1/8 (a 64 px thumbnail,
// where the old path's box shrink and the 8×8 block grid average
// different pixels together). A level and a half in 255 is invisible in a
// thumbnail; a wrong block or colour plane costs tens.
const maxReducedMAD = 1.5

// A thumbnail or shrinking resize of a JPEG decodes it at the smallest
// scale that leaves loadMargin, and its result stays close to the one from
// the full decode: the same size, and a small mean difference.
func TestReducedDecodeMatchesFullDecode(t *testing.T) {
	photo := pipelinetest.JPEG(1200, 800, 7)
	gray := func() []byte {
		src := pipelinetest.Photo(1200, 800, 8)
		g := image.NewGray(src.Rect)
		for i := range g.Pix {
			g.Pix[i] = color.GrayModel.Convert(src.At(i%1200, i/1200)).(color.Gray).Y
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, g, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}()
	for _, tt := range []struct {
		name  string
		data  []byte
		spec  string
		denom int
	}{
		{"thumbnail 256", photo, "thumbnail(256)", 2},
		{"thumbnail 128", photo, "thumbnail(128)", 4},
		{"thumbnail 64", photo, "thumbnail(64)", 8},
		{"fit 300 wide", photo, "resize(300,0,fit)", 2},
		{"fill 100x100", photo, "resize(100,100,fill)", 4},
		{"thumbnail then blur", photo, "thumbnail(100)|blur(1)", 4},
		{"turned by EXIF", exifJPEG(photo, 6, binary.BigEndian), "thumbnail(128)", 4},
		{"gray", gray, "thumbnail(128)", 4},
		{"not shrunk enough", photo, "resize(700,0,fit)", 1},
		{"blur first", photo, "blur(1)|thumbnail(128)", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := ParseSpec(tt.spec + "|format(png)")
			if err != nil {
				t.Fatal(err)
			}
			info, err := Probe(bytes.NewReader(tt.data), testMaxPixels)
			if err != nil {
				t.Fatal(err)
			}
			denom := loadScale(info, spec, testMaxPixels)
			if denom != tt.denom {
				t.Fatalf("decoded at 1/%d, want 1/%d", denom, tt.denom)
			}
			// What Run does, short of encoding.
			img, err := decodeProbed(t.Context(), bytes.NewReader(tt.data), info, denom)
			if err != nil {
				t.Fatal(err)
			}
			got, err := apply(t.Context(), img, spec, testMaxPixels, image.Pt(info.Width, info.Height))
			if err != nil {
				t.Fatal(err)
			}
			full, _, err := DecodeBytes(tt.data, testMaxPixels)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Apply(t.Context(), full, spec, testMaxPixels)
			if err != nil {
				t.Fatal(err)
			}
			if got.Rect != want.Rect {
				t.Fatalf("result %v, want %v", got.Rect, want.Rect)
			}
			mad := MeanAbsDiff(got, want)
			t.Logf("1/%d: mean absolute difference %.3f levels", denom, mad)
			if mad > maxReducedMAD {
				t.Errorf("1/%d: mean absolute difference %.2f levels from the full decode's result, more than %v", denom, mad, maxReducedMAD)
			}
		})
	}
}

// The memory estimate counts the reduced decode, not the full one: a
// budget too small for a 24 MP photo's planes still lets its thumbnail
// through, and refuses an operation that needs every pixel.
func TestBudgetCountsReducedDecode(t *testing.T) {
	data := jpegWithSize(t, 6000, 4000, false)
	info, err := Probe(bytes.NewReader(data), testMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	thumb := Spec{Ops: []Op{Thumbnail{Size: 256}}, Format: JPEG, Quality: 85}
	reduced, err := Estimate(info, thumb, testMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	// 1/8 scale: 750×500 of 4:2:0 in whole MCUs, 1.5 samples a pixel.
	if want := int64(6000 * 4000 * 3 / 2 / 64); reduced.Decoded != want {
		t.Errorf("thumbnail(256) of 6000x4000: decoded %d bytes, want %d (1/8 scale)", reduced.Decoded, want)
	}
	blur := Spec{Ops: []Op{Blur{Sigma: 1}}, Format: JPEG, Quality: 85}
	full, err := Estimate(info, blur, testMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	if full.Decoded != 64*reduced.Decoded {
		t.Errorf("blur(1) of 6000x4000: decoded %d bytes, want the full %d", full.Decoded, 64*reduced.Decoded)
	}

	// A real photo, and a budget between what its thumbnail and its full
	// decode need.
	photo := pipelinetest.JPEG(1600, 1200, 3)
	if info, err = Probe(bytes.NewReader(photo), testMaxPixels); err != nil {
		t.Fatal(err)
	}
	small, err := Estimate(info, thumb, testMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	resize := Spec{Ops: []Op{Resize{Width: 1000, Mode: Fit}}, Format: JPEG, Quality: 85}
	large, err := Estimate(info, resize, testMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	if large.Memory <= small.Memory {
		t.Fatalf("resize to 1000 needs %d bytes, within the thumbnail's %d: no test", large.Memory, small.Memory)
	}
	lim := Limits{MaxPixels: testMaxPixels, MaxMemory: small.Memory}
	if _, err := Run(t.Context(), io.Discard, bytes.NewReader(photo), thumb, lim); err != nil {
		t.Errorf("thumbnail within its estimate: %v", err)
	}
	if _, err := Run(t.Context(), io.Discard, bytes.NewReader(photo), resize, lim); !errors.Is(err, ErrOverMemory) {
		t.Errorf("resize to 1000 (decoded at full size) within a thumbnail's budget: err = %v, want ErrOverMemory", err)
	}
}

// A JPEG jpegscale leaves to image/jpeg is decoded as before, and its
// thumbnail is the old one exactly.
func TestUnsupportedJPEGFallsBack(t *testing.T) {
	// An RGB JPEG: no JFIF marker, components named R, G, B.
	var b bytes.Buffer
	if err := jpeg.Encode(&b, pipelinetest.Photo(640, 480, 2), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	sof := bytes.Index(data, []byte{0xFF, 0xC0})
	sos := bytes.Index(data, []byte{0xFF, 0xDA})
	data[sof+10], data[sof+13], data[sof+16] = 'R', 'G', 'B'
	data[sos+5], data[sos+7], data[sos+9] = 'R', 'G', 'B'
	if _, err := jpegscale.Decode(bytes.NewReader(data), 4); !errors.Is(err, jpegscale.ErrUnsupported) {
		t.Fatalf("jpegscale: err = %v, want ErrUnsupported", err)
	}
	spec := Spec{Ops: []Op{Thumbnail{Size: 100}}, Format: PNG}
	var got bytes.Buffer
	if _, err := Run(t.Context(), &got, bytes.NewReader(data), spec, Limits{MaxPixels: testMaxPixels}); err != nil {
		t.Fatal(err)
	}
	full, _, err := DecodeBytes(data, testMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Apply(t.Context(), full, spec, testMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	var wantPNG bytes.Buffer
	if err := Encode(&wantPNG, want, spec); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), wantPNG.Bytes()) {
		t.Error("the fallback's thumbnail differs from the full decode's")
	}
}
