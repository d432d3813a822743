package pipeline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"testing"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

const testMaxPixels = 50_000_000

func TestOperationsGeometry(t *testing.T) {
	src := pipelinetest.Photo(300, 200, 1)
	tests := []struct {
		op         Op
		wantW      int
		wantH      int
		wantErrMsg string
	}{
		{op: Thumbnail{Size: 64}, wantW: 64, wantH: 43},
		{op: Thumbnail{Size: 1000}, wantW: 300, wantH: 200}, // never enlarges
		{op: Resize{Width: 150, Mode: Fit}, wantW: 150, wantH: 100},
		{op: Resize{Height: 400, Mode: Fit}, wantW: 600, wantH: 400},
		{op: Resize{Width: 100, Height: 100, Mode: Fill}, wantW: 100, wantH: 100},
		{op: Crop{X: 10, Y: 20, Width: 50, Height: 40}, wantW: 50, wantH: 40},
		{op: Crop{X: 290, Y: 0, Width: 50, Height: 40}, wantErrMsg: "outside"},
		{op: Rotate{Degrees: 90}, wantW: 200, wantH: 300},
		{op: Rotate{Degrees: 180}, wantW: 300, wantH: 200},
		{op: Flip{Horizontal: true}, wantW: 300, wantH: 200},
		{op: Grayscale{}, wantW: 300, wantH: 200},
		{op: Blur{Sigma: 2}, wantW: 300, wantH: 200},
		{op: Sharpen{Sigma: 1, Amount: 1}, wantW: 300, wantH: 200},
	}
	for _, tt := range tests {
		t.Run(tt.op.canonical(), func(t *testing.T) {
			out, err := Apply(t.Context(), src, Spec{Ops: []Op{tt.op}}, testMaxPixels)
			if tt.wantErrMsg != "" {
				if err == nil {
					t.Fatalf("want error containing %q", tt.wantErrMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.Rect.Dx() != tt.wantW || out.Rect.Dy() != tt.wantH {
				t.Fatalf("got %dx%d, want %dx%d", out.Rect.Dx(), out.Rect.Dy(), tt.wantW, tt.wantH)
			}
		})
	}
}

func TestUpscaleBeyondLimitRefused(t *testing.T) {
	_, err := Apply(t.Context(), pipelinetest.Photo(100, 100, 1), Spec{Ops: []Op{Resize{Width: 10000, Height: 10000, Mode: Fill}}}, 1_000_000)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

// marked is a 3×2 image whose top-left pixel is red, so where the red pixel
// ends up shows what a transform did.
func marked() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 3, 2))
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	img.SetRGBA(0, 0, color.RGBA{255, 0, 0, 255})
	return img
}

func redAt(img *image.RGBA) image.Point {
	for y := range img.Rect.Dy() {
		for x := range img.Rect.Dx() {
			if img.RGBAAt(x, y).R == 255 {
				return image.Pt(x, y)
			}
		}
	}
	return image.Pt(-1, -1)
}

func TestPixelMoves(t *testing.T) {
	tests := []struct {
		name string
		got  *image.RGBA
		want image.Point
	}{
		{"rotate 90 clockwise", rotate(marked(), 90), image.Pt(1, 0)},
		{"rotate 180", rotate(marked(), 180), image.Pt(2, 1)},
		{"rotate 270", rotate(marked(), 270), image.Pt(0, 2)},
		{"flip h", flip(marked(), true), image.Pt(2, 0)},
		{"flip v", flip(marked(), false), image.Pt(0, 1)},
		{"orientation 6 = rotate 90", toRGBA(orient(marked(), 6)), image.Pt(1, 0)},
		{"orientation 5 = transpose", toRGBA(orient(marked(), 5)), image.Pt(0, 0)},
		{"orientation 7 = transverse", toRGBA(orient(marked(), 7)), image.Pt(1, 2)},
	}
	for _, tt := range tests {
		if p := redAt(tt.got); p != tt.want {
			t.Errorf("%s: red pixel at %v, want %v", tt.name, p, tt.want)
		}
	}
}

func TestGrayscaleAndBlur(t *testing.T) {
	src := pipelinetest.Photo(64, 64, 2)
	g := grayscale(src)
	for i := 0; i < len(g.Pix); i += 4 {
		if g.Pix[i] != g.Pix[i+1] || g.Pix[i] != g.Pix[i+2] {
			t.Fatalf("pixel %d not gray: %v", i/4, g.Pix[i:i+4])
		}
	}
	// Blur keeps a flat image flat (weights are normalised at the edges too)
	// and lowers the variance of a textured one.
	flat := image.NewRGBA(image.Rect(0, 0, 20, 20))
	for i := range flat.Pix {
		flat.Pix[i] = 200
	}
	for i, v := range must(gaussian(t.Context(), flat, 3)).Pix {
		if v != 200 {
			t.Fatalf("flat image changed at %d: %d", i, v)
		}
	}
	if variance(must(gaussian(t.Context(), src, 2))) >= variance(src) {
		t.Fatal("blur did not smooth")
	}
	if variance(must(sharpen(t.Context(), src, 1, 2))) <= variance(src) {
		t.Fatal("sharpen did not add contrast")
	}
}

// must is for operations given a context that never ends.
func must(img *image.RGBA, err error) *image.RGBA {
	if err != nil {
		panic(err)
	}
	return img
}

func variance(img *image.RGBA) float64 {
	var sum, sq float64
	n := float64(len(img.Pix) / 4)
	for i := 0; i < len(img.Pix); i += 4 {
		v := float64(img.Pix[i+1])
		sum += v
		sq += v * v
	}
	return sq/n - (sum/n)*(sum/n)
}

// TestShrinkMatchesLanczos checks the two-step resize against a plain
// Lanczos-3 resample of the full image, for a JPEG (the YCbCr path) and an
// RGBA source.
func TestShrinkMatchesLanczos(t *testing.T) {
	jpg, _, err := DecodeBytes(pipelinetest.JPEG(1500, 1000, 3), testMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]image.Image{"ycbcr": jpg, "rgba": toRGBA(jpg)} {
		fast := must(resize(t.Context(), src, 128, 85))
		ref := must(lanczos(t.Context(), toRGBA(src), 128, 85))
		if d := MeanAbsDiff(fast, ref); d > 2.0 {
			t.Errorf("%s: mean abs difference to Lanczos = %.2f levels, want <= 2", name, d)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := pipelinetest.JPEG(64, 48, 4)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrInvalid},
		{"text", []byte("hello, not an image"), ErrInvalid},
		{"truncated jpeg", good[:len(good)/2], ErrInvalid},
		{"png bomb", pngWithSize(100_000, 100_000), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DecodeBytes(tt.data, testMaxPixels)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, info, err := DecodeBytes(good, testMaxPixels); err != nil || info.Width != 64 || info.Format != "jpeg" {
		t.Fatalf("good jpeg: %+v %v", info, err)
	}
}

// pngWithSize returns a tiny PNG whose header claims w×h pixels: the shape
// of a decompression bomb.
func pngWithSize(w, h uint32) []byte {
	var buf bytes.Buffer
	_ = png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1)))
	b := buf.Bytes()
	// IHDR data starts after the 8-byte signature, 4-byte length and "IHDR".
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func TestProbeWebP(t *testing.T) {
	// A lossless WebP header (VP8L) for a 300×200 image with alpha.
	w, h := uint32(300-1), uint32(200-1)
	bits := w | h<<14 | 1<<28
	vp8l := append([]byte{0x2f}, binary.LittleEndian.AppendUint32(nil, bits)...)
	chunk := append([]byte("VP8L"), binary.LittleEndian.AppendUint32(nil, uint32(len(vp8l)))...)
	chunk = append(chunk, vp8l...)
	riff := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(chunk)))...)
	riff = append(append(riff, "WEBP"...), chunk...)
	info, err := Probe(bytes.NewReader(riff), testMaxPixels)
	if err != nil || info.Format != "webp" || info.Width != 300 || info.Height != 200 {
		t.Fatalf("probe webp = %+v, %v", info, err)
	}
}

// exifJPEG inserts an APP1 EXIF segment with the given orientation after SOI.
func exifJPEG(jpg []byte, orientation uint16, bo binary.AppendByteOrder) []byte {
	tiff := []byte("II*\x00")
	if bo == binary.BigEndian {
		tiff = []byte("MM\x00*")
	}
	tiff = bo.AppendUint32(tiff, 8)
	tiff = bo.AppendUint16(tiff, 1)                         // one IFD entry
	tiff = bo.AppendUint16(tiff, 0x0112)                    // Orientation
	tiff = bo.AppendUint16(tiff, 3)                         // SHORT
	tiff = bo.AppendUint32(tiff, 1)                         // count
	tiff = append(bo.AppendUint16(tiff, orientation), 0, 0) // value, padded
	tiff = bo.AppendUint32(tiff, 0)                         // no next IFD
	seg := append([]byte("Exif\x00\x00"), tiff...)
	out := append([]byte{0xFF, 0xD8, 0xFF, 0xE1}, binary.BigEndian.AppendUint16(nil, uint16(len(seg)+2))...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

func TestEXIFOrientation(t *testing.T) {
	base := pipelinetest.JPEG(60, 40, 5)
	for _, bo := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		for o, wantW := range map[uint16]int{1: 60, 3: 60, 6: 40, 8: 40} {
			img, info, err := DecodeBytes(exifJPEG(base, o, bo), testMaxPixels)
			if err != nil {
				t.Fatal(err)
			}
			if info.Orientation != int(o) || info.Width != wantW || img.Bounds().Dx() != wantW {
				t.Errorf("%v orientation %d: info %+v, decoded %v", bo, o, info, img.Bounds())
			}
		}
	}
}

func TestRunEncodes(t *testing.T) {
	spec, err := ParseSpec("thumbnail(32)|grayscale|format(png)")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := Run(t.Context(), &out, bytes.NewReader(pipelinetest.JPEG(120, 80, 6)), spec, Limits{MaxPixels: testMaxPixels})
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&out)
	if err != nil || img.Bounds().Dx() != 32 || res.Width != 32 || res.Height != 21 || res.ContentType != "image/png" {
		t.Fatalf("result %+v, decoded %v %v", res, img.Bounds(), err)
	}
	spec.Format, spec.Quality = JPEG, 50
	out.Reset()
	if _, err := Run(t.Context(), &out, bytes.NewReader(pipelinetest.JPEG(120, 80, 6)), spec, Limits{MaxPixels: testMaxPixels}); err != nil {
		t.Fatal(err)
	}
	if _, err := jpeg.Decode(&out); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(pipelinetest.JPEG(16, 16, 1))
	f.Add(pipelinetest.PNG(8, 8, 2))
	f.Add(pngWithSize(1<<20, 1<<20))
	f.Add(exifJPEG(pipelinetest.JPEG(8, 8, 3), 6, binary.BigEndian))
	f.Add([]byte("GIF89a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, info, err := DecodeBytes(data, 1<<20)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if b := img.Bounds(); b.Dx() != info.Width || b.Dy() != info.Height {
			t.Fatalf("info %dx%d but decoded %v", info.Width, info.Height, b)
		}
	})
}

func FuzzJPEGOrientation(f *testing.F) {
	f.Add(exifJPEG(pipelinetest.JPEG(8, 8, 3), 6, binary.LittleEndian)[:64])
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		if o := jpegOrientation(data); o < 1 || o > 8 {
			t.Fatalf("orientation %d out of range", o)
		}
	})
}

func TestMeanAbsDiff(t *testing.T) {
	a := pipelinetest.Photo(10, 10, 1)
	if MeanAbsDiff(a, a) != 0 {
		t.Fatal("identical images differ")
	}
	b := image.NewRGBA(a.Rect)
	copy(b.Pix, a.Pix)
	for i := 0; i < len(b.Pix); i += 4 {
		b.Pix[i] = uint8(math.Min(255, float64(b.Pix[i])+3))
	}
	if d := MeanAbsDiff(a, b); d <= 0 || d > 1 {
		t.Fatalf("diff = %v", d)
	}
}

func TestCheckComplete(t *testing.T) {
	jpg := pipelinetest.JPEG(40, 30, 7)
	pngb := pipelinetest.PNG(40, 30, 7)
	tests := []struct {
		name   string
		data   []byte
		format string
		ok     bool
	}{
		{"jpeg", jpg, "jpeg", true},
		{"jpeg padded", append(append([]byte{}, jpg...), 0, 0, 0), "jpeg", true},
		{"jpeg truncated", jpg[:len(jpg)-100], "jpeg", false},
		{"png", pngb, "png", true},
		{"png truncated", pngb[:len(pngb)-5], "png", false},
	}
	for _, tt := range tests {
		err := CheckComplete(bytes.NewReader(tt.data), int64(len(tt.data)), tt.format)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
