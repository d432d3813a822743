package jpegscale

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"testing"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

type testFile struct {
	name string
	data []byte
}

// corpus is a photo-like image, and an odd-sized one, in every mode the
// decoder handles: image/jpeg's own 4:2:0 and grayscale files, and the
// test encoder's other samplings, restart intervals, separate scans and
// progressive files.
func corpus(t testing.TB) []testFile {
	return corpusOf(t, image.Pt(120, 80), image.Pt(37, 23))
}

// corpusOf is the corpus at the given sizes.
func corpusOf(t testing.TB, sizes ...image.Point) []testFile {
	var files []testFile
	for _, size := range sizes {
		photo := pipelinetest.Photo(size.X, size.Y, uint64(size.X))
		name := func(mode string) string { return fmt.Sprintf("%s-%dx%d", mode, size.X, size.Y) }
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, photo, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		files = append(files, testFile{name("stdlib-420"), buf.Bytes()})
		gray := image.NewGray(photo.Rect)
		for i := range gray.Pix {
			gray.Pix[i] = color.GrayModel.Convert(photo.At(i%size.X, i/size.X)).(color.Gray).Y
		}
		buf = bytes.Buffer{}
		if err := jpeg.Encode(&buf, gray, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		files = append(files, testFile{name("stdlib-gray"), buf.Bytes()})
		for _, e := range []struct {
			mode string
			enc  encoding
		}{
			{"444", encoding{h: 1, v: 1}},
			{"422", encoding{h: 2, v: 1}},
			{"440", encoding{h: 1, v: 2}},
			{"420", encoding{h: 2, v: 2}},
			{"gray", encoding{gray: true}},
			{"420-restart1", encoding{h: 2, v: 2, ri: 1}},
			{"422-restart3", encoding{h: 2, v: 1, ri: 3}},
			{"gray-restart5", encoding{gray: true, ri: 5}},
			{"420-separate", encoding{h: 2, v: 2, separate: true}},
			{"444-separate-restart2", encoding{h: 1, v: 1, separate: true, ri: 2}},
			{"progressive-444", encoding{h: 1, v: 1, progressive: true}},
			{"progressive-422", encoding{h: 2, v: 1, progressive: true}},
			{"progressive-420", encoding{h: 2, v: 2, progressive: true}},
			{"progressive-gray", encoding{gray: true, progressive: true}},
			{"progressive-444-restart2", encoding{h: 1, v: 1, progressive: true, ri: 2}},
			{"progressive-gray-restart7", encoding{gray: true, progressive: true, ri: 7}},
		} {
			files = append(files, testFile{name(e.mode), encode(t, photo, e.enc)})
		}
	}
	return files
}

// planes are an image's sample planes, cropped to the image.
type planes struct {
	w, h   [3]int
	pix    [3][]byte
	ncomp  int
	stride [3]int
}

func planesOf(t testing.TB, img image.Image) planes {
	var p planes
	switch m := img.(type) {
	case *image.Gray:
		p.ncomp = 1
		p.w[0], p.h[0], p.pix[0], p.stride[0] = m.Rect.Dx(), m.Rect.Dy(), m.Pix[m.PixOffset(m.Rect.Min.X, m.Rect.Min.Y):], m.Stride
	case *image.YCbCr:
		p.ncomp = 3
		p.w[0], p.h[0], p.pix[0], p.stride[0] = m.Rect.Dx(), m.Rect.Dy(), m.Y[m.YOffset(m.Rect.Min.X, m.Rect.Min.Y):], m.YStride
		c := m.COffset(m.Rect.Min.X, m.Rect.Min.Y)
		cw, ch := chromaSize(m.Rect.Dx(), m.Rect.Dy(), m.SubsampleRatio)
		for i, pl := range [][]byte{m.Cb, m.Cr} {
			p.w[i+1], p.h[i+1], p.pix[i+1], p.stride[i+1] = cw, ch, pl[c:], m.CStride
		}
	default:
		t.Fatalf("decoded a %T", img)
	}
	return p
}

func chromaSize(w, h int, r image.YCbCrSubsampleRatio) (int, int) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return (w + 1) / 2, h
	case image.YCbCrSubsampleRatio440:
		return w, (h + 1) / 2
	case image.YCbCrSubsampleRatio420:
		return (w + 1) / 2, (h + 1) / 2
	}
	return w, h
}

func (p planes) at(c, x, y int) int { return int(p.pix[c][y*p.stride[c]+x]) }

// shrink box-averages each plane by k, the last boxes partial.
func (p planes) shrink(k int) planes {
	q := planes{ncomp: p.ncomp}
	for c := range p.ncomp {
		w, h := (p.w[c]+k-1)/k, (p.h[c]+k-1)/k
		q.w[c], q.h[c], q.stride[c], q.pix[c] = w, h, w, make([]byte, w*h)
		for y := range h {
			for x := range w {
				sum, n := 0, 0
				for yy := y * k; yy < min(y*k+k, p.h[c]); yy++ {
					for xx := x * k; xx < min(x*k+k, p.w[c]); xx++ {
						sum += p.at(c, xx, yy)
						n++
					}
				}
				q.pix[c][y*w+x] = byte((sum + n/2) / n)
			}
		}
	}
	return q
}

// diff is the largest and the mean absolute difference of the samples.
func diff(t testing.TB, a, b planes) (maxDiff int, mean float64) {
	if a.ncomp != b.ncomp || a.w != b.w || a.h != b.h {
		t.Fatalf("planes of %d components %v×%v, want %d %v×%v", a.ncomp, a.w, a.h, b.ncomp, b.w, b.h)
	}
	var sum, n int
	for c := range a.ncomp {
		for y := range a.h[c] {
			for x := range a.w[c] {
				d := a.at(c, x, y) - b.at(c, x, y)
				if d < 0 {
					d = -d
				}
				maxDiff = max(maxDiff, d)
				sum += d
				n++
			}
		}
	}
	return maxDiff, float64(sum) / float64(n)
}

// At scale 1 every sample is within one level of image/jpeg's: both
// inverse DCTs meet the IEEE 1180 accuracy bounds and round differently.
func TestDecodeMatchesStdlib(t *testing.T) {
	for _, f := range corpus(t) {
		t.Run(f.name, func(t *testing.T) {
			want, err := jpeg.Decode(bytes.NewReader(f.data))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(bytes.NewReader(f.data), 1)
			if err != nil {
				t.Fatal(err)
			}
			if got.Bounds() != want.Bounds() {
				t.Fatalf("bounds %v, want %v", got.Bounds(), want.Bounds())
			}
			if g, ok := got.(*image.YCbCr); ok && g.SubsampleRatio != want.(*image.YCbCr).SubsampleRatio {
				t.Fatalf("subsampling %v, want %v", g.SubsampleRatio, want.(*image.YCbCr).SubsampleRatio)
			}
			if d, _ := diff(t, planesOf(t, got), planesOf(t, want)); d > 1 {
				t.Errorf("a sample differs by %d levels from image/jpeg's", d)
			}
		})
	}
}

// maxScaledMAD bounds the mean absolute difference, in levels, between a
// reduced decode and image/jpeg's full decode box-averaged by the same
// factor. They differ by design: the reduced inverse DCT keeps a block's
// lowest frequencies and evaluates them at the centre of each box, so the
// higher frequencies a box average keeps a little of are dropped (a few
// levels on the texture of these photos, more at the sun's edge), and
// rounding differs. Measured: at most 1.5 levels on the 120×80 photos and
// 2.1 on the 37×23 ones, where the sun's edge and the horizon are a large
// share of the samples. Three levels in 255 is invisible in a thumbnail
// and still far below what a wrong coefficient or block position costs
// (tens of levels); the test logs the measured figures.
const maxScaledMAD = 3.0

func TestDecodeScaled(t *testing.T) {
	for _, f := range corpus(t) {
		want, err := jpeg.Decode(bytes.NewReader(f.data))
		if err != nil {
			t.Fatal(err)
		}
		full := planesOf(t, want)
		for _, denom := range []int{2, 4, 8} {
			t.Run(fmt.Sprintf("%s/1:%d", f.name, denom), func(t *testing.T) {
				got, err := Decode(bytes.NewReader(f.data), denom)
				if err != nil {
					t.Fatal(err)
				}
				w, h := ScaledSize(want.Bounds().Dx(), want.Bounds().Dy(), denom)
				if got.Bounds() != image.Rect(0, 0, w, h) {
					t.Fatalf("bounds %v, want %v", got.Bounds(), image.Rect(0, 0, w, h))
				}
				maxDiff, mad := diff(t, planesOf(t, got), full.shrink(denom))
				t.Logf("mean absolute difference %.2f, largest %d", mad, maxDiff)
				if mad > maxScaledMAD {
					t.Errorf("mean absolute difference %.2f levels from image/jpeg's box-averaged decode, more than %v", mad, maxScaledMAD)
				}
			})
		}
	}
}

func TestDecodeConfig(t *testing.T) {
	for _, f := range corpus(t) {
		t.Run(f.name, func(t *testing.T) {
			cfg, err := DecodeConfig(bytes.NewReader(f.data))
			if err != nil {
				t.Fatal(err)
			}
			img, err := Decode(bytes.NewReader(f.data), 1)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Width != img.Bounds().Dx() || cfg.Height != img.Bounds().Dy() {
				t.Errorf("config says %dx%d, image is %v", cfg.Width, cfg.Height, img.Bounds())
			}
			if y, ok := img.(*image.YCbCr); cfg.Gray == ok || ok && y.SubsampleRatio != cfg.Ratio {
				t.Errorf("config says gray %v ratio %v, image is %T", cfg.Gray, cfg.Ratio, img)
			}
			if img, _ := cfg.Memory(1); img < int64(cfg.Width*cfg.Height) {
				t.Errorf("memory of the image %d, less than its %d pixels", img, cfg.Width*cfg.Height)
			}
		})
	}
}

// What the decoder leaves to image/jpeg is reported as ErrUnsupported, so
// the caller knows to fall back.
func TestDecodeUnsupported(t *testing.T) {
	files := map[string][]byte{}
	for _, f := range corpus(t) {
		files[f.name] = f.data
	}
	sof := func(b []byte) int { return bytes.Index(b, []byte{0xFF, sof0}) }
	patch := func(name string, edit func(b []byte)) []byte {
		b := bytes.Clone(files[name])
		edit(b)
		return b
	}
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"12-bit", patch("444-120x80", func(b []byte) { b[sof(b)+4] = 12 })},
		{"arithmetic coding", patch("444-120x80", func(b []byte) { b[sof(b)+1] = 0xC9 })},
		{"4:1:1", patch("444-120x80", func(b []byte) { b[sof(b)+11] = 0x41 })},
		{"chroma 2x2", patch("444-120x80", func(b []byte) { b[sof(b)+14] = 0x22 })},
		{"RGB", patch("444-120x80", func(b []byte) {
			copy(b[2:], []byte{0xFF, 0xE1}) // the JFIF segment becomes APP1
			b[sof(b)+10], b[sof(b)+13], b[sof(b)+16] = 'R', 'G', 'B'
			for i := sof(b); i < len(b)-1; i++ { // and the scan's selectors
				if b[i] == 0xFF && b[i+1] == sos {
					b[i+5], b[i+7], b[i+9] = 'R', 'G', 'B'
					break
				}
			}
		})},
		{"progressive 4:2:0 with restarts", encode(t, pipelinetest.Photo(40, 40, 1), encoding{h: 2, v: 2, progressive: true, ri: 2})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(bytes.NewReader(tt.data), 2); !errors.Is(err, ErrUnsupported) {
				t.Errorf("got error %v, want ErrUnsupported", err)
			}
		})
	}
}

// Damaged files are accepted or rejected as image/jpeg accepts or rejects
// them: a file cut short anywhere, and bytes changed in its headers and
// its data.
func TestDecodeDamaged(t *testing.T) {
	for _, f := range corpus(t) {
		if len(f.data) > 4000 {
			continue // the small ones are damage enough
		}
		t.Run(f.name, func(t *testing.T) {
			for n := 0; n < len(f.data); n += 1 + n/16 {
				sameVerdict(t, fmt.Sprintf("cut at %d", n), f.data[:n])
			}
			for i := 0; i < len(f.data); i += 1 + i/8 {
				for _, v := range []byte{0x00, 0xFF, f.data[i] ^ 0x10} {
					b := bytes.Clone(f.data)
					b[i] = v
					sameVerdict(t, fmt.Sprintf("byte %d set to %#x", i, v), b)
				}
			}
		})
	}
}

// sameVerdict checks that Decode accepts data when image/jpeg does, at
// every scale, unless it leaves data to image/jpeg.
func sameVerdict(t *testing.T, what string, data []byte) {
	t.Helper()
	_, stdErr := jpeg.Decode(bytes.NewReader(data))
	for _, denom := range []int{1, 8} {
		_, err := Decode(bytes.NewReader(data), denom)
		if errors.Is(err, ErrUnsupported) {
			return
		}
		if (err == nil) != (stdErr == nil) {
			t.Errorf("%s, 1:%d: error %v; image/jpeg's %v", what, denom, err, stdErr)
		}
	}
}

func FuzzDecode(f *testing.F) {
	// The small images only: every fuzzing worker makes the seeds again
	// when it starts, and they cover every mode.
	for _, file := range corpusOf(f, image.Pt(37, 23)) {
		f.Add(file.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A huge canvas in a few bytes would only measure allocation: skip
		// any input with a frame header of more than a megapixel, wherever
		// it is (image/jpeg's DecodeConfig stops at the first).
		for i := 0; i+9 <= len(data); i++ {
			if data[i] == 0xFF && data[i+1] >= sof0 && data[i+1] <= sof2 &&
				(int(data[i+5])<<8|int(data[i+6]))*(int(data[i+7])<<8|int(data[i+8])) > 1<<20 {
				return
			}
		}
		sameVerdict(t, "fuzzed", data)
	})
}

// A scaled size rounds up: the last sample covers what is left of the
// image, as the reduced decode's last block column and row do.
func TestScaledSize(t *testing.T) {
	for _, tt := range []struct{ w, h, denom, sw, sh int }{
		{37, 23, 1, 37, 23}, {37, 23, 2, 19, 12}, {37, 23, 4, 10, 6}, {37, 23, 8, 5, 3},
		{3000, 2000, 8, 375, 250}, {1, 1, 8, 1, 1},
	} {
		if sw, sh := ScaledSize(tt.w, tt.h, tt.denom); sw != tt.sw || sh != tt.sh {
			t.Errorf("ScaledSize(%d, %d, %d) = %d, %d, want %d, %d", tt.w, tt.h, tt.denom, sw, sh, tt.sw, tt.sh)
		}
	}
}
