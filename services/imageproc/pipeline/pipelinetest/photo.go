// Package pipelinetest makes photo-like test images: smooth gradients with
// edges and fine texture, so resizers and encoders see what a camera gives
// them rather than flat colour or pure noise.
package pipelinetest

import (
	"bytes"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
)

// Photo returns a w×h opaque image, the same for the same seed.
func Photo(w, h int, seed uint64) *image.RGBA {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	cx, cy := float64(w)*(0.3+0.4*rng.Float64()), float64(h)*(0.3+0.4*rng.Float64())
	for y := range h {
		for x := range w {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			// sky-to-ground gradient, a sun disc, a horizon edge and texture
			r := 90 + 120*fy
			g := 140 + 60*math.Sin(3*fx+float64(seed))
			b := 220 - 150*fy
			if d := math.Hypot(float64(x)-cx, float64(y)-cy); d < float64(min(w, h))/8 {
				r, g, b = 250, 220, 120
			}
			if fy > 0.65+0.05*math.Sin(9*fx) {
				r, g, b = 60+40*math.Sin(float64(x)/7), 110+30*math.Cos(float64(y)/5), 50
			}
			n := float64(rng.IntN(17)) - 8
			p := img.Pix[y*img.Stride+4*x:]
			p[0], p[1], p[2], p[3] = clamp(r+n), clamp(g+n), clamp(b+n), 255
		}
	}
	return img
}

func clamp(v float64) uint8 { return uint8(math.Max(0, math.Min(255, v))) }

// JPEG encodes Photo(w, h, seed) at quality 90.
func JPEG(w, h int, seed uint64) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, Photo(w, h, seed), &jpeg.Options{Quality: 90}); err != nil {
		panic(err) // encoding to memory cannot fail
	}
	return buf.Bytes()
}

// PNG encodes Photo(w, h, seed).
func PNG(w, h int, seed uint64) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, Photo(w, h, seed)); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// LargeJPEG returns a valid JPEG of about size bytes: a small photo with
// comment segments after its start marker. It probes, and is complete, like
// a camera file of that size, without seconds of encoding per call.
func LargeJPEG(size int) []byte {
	small := JPEG(640, 480, 1)
	out := append([]byte{}, small[:2]...)
	comment := make([]byte, 65533)
	for len(out)+len(small)+65537 <= size {
		out = append(out, 0xFF, 0xFE, 0xFF, 0xFF) // COM, length 65535
		out = append(out, comment...)
	}
	return append(out, small[2:]...)
}
