// Package pipelinetest makes photo-like test images: smooth gradients with
// edges and fine texture, so resizers and encoders see what a camera gives
// them rather than flat colour or pure noise.
package pipelinetest

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
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

// DeepPNG returns a w×h PNG of 16-bit RGBA pixels, all transparent black:
// a legal file of 380 KB for 7000×7000 that decodes to 8 bytes a pixel,
// 392 MB. Its compressed stream is written by hand (one deflate block that
// repeats a zero byte 258 at a time, two bits per repeat, as zlib's best
// compression does), so making it costs no time of its own.
func DeepPNG(w, h int) []byte {
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		out.Write(binary.BigEndian.AppendUint32(nil, uint32(len(data))))
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		out.WriteString(typ)
		out.Write(data)
		out.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32()))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	chunk("IHDR", append(ihdr, 16, 6, 0, 0, 0)) // 16 bits, RGBA, deflate, no filter, not interlaced
	chunk("IDAT", zlibZeros(h*(1+8*w)))         // each row: filter "none", then its pixels
	chunk("IEND", nil)
	return out.Bytes()
}

// zlibZeros is a zlib stream of n zero bytes, n ≥ 1.
func zlibZeros(n int) []byte {
	var bw bitWriter
	bw.out = []byte{0x78, 0x01} // deflate, 32 KiB window, no dictionary
	bw.bits(1, 1)               // the final block
	bw.bits(2, 2)               // with Huffman codes of its own
	// Literal/length codes: 285 (a copy of 258 bytes) is "0", the zero
	// byte "10", the end of the block "11"; one distance code, 1, is "0".
	bw.bits(286-257, 5) // 286 literal/length codes
	bw.bits(0, 5)       // and one distance code
	// The code-length code, its lengths in the order RFC 1951 lists them
	// (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1): 18
	// (a run of zeros) is "0", length 1 is "10", length 2 is "11".
	bw.bits(18-4, 4)
	for _, l := range []uint64{0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2} {
		bw.bits(l, 3)
	}
	code := func(c string) { // a Huffman code, first bit first
		for _, b := range c {
			bw.bits(uint64(b-'0'), 1)
		}
	}
	// The lengths of the literal/length and distance codes, in that code.
	zeroRun := func(k int) { code("0"); bw.bits(uint64(k-11), 7) }
	code("11")   // literal 0: length 2
	zeroRun(138) // literals 1–138 unused
	zeroRun(117) // literals 139–255 unused
	code("11")   // 256, end of block: length 2
	zeroRun(28)  // lengths 257–284 unused
	code("10")   // 285: length 1
	code("10")   // distance code 0: length 1
	// The data, in the literal/length and distance codes.
	code("10") // the first zero, as a literal
	copies, rest := (n-1)/258, (n-1)%258
	bw.zeros(2 * copies) // each copy of 258: "0" for 285, "0" for distance 1
	for range rest {
		code("10")
	}
	code("11")
	bw.flush()
	// Adler-32 of n zeros: the byte sum stays 1, the sum of sums is n.
	return binary.BigEndian.AppendUint32(bw.out, uint32(n%65521)<<16|1)
}

// bitWriter packs bits least significant first, as deflate does.
type bitWriter struct {
	out  []byte
	acc  uint64
	nacc uint
}

func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.nacc
	w.nacc += n
	for w.nacc >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

func (w *bitWriter) zeros(n int) {
	for ; n > 0 && w.nacc%8 != 0; n-- {
		w.bits(0, 1)
	}
	w.out = append(w.out, make([]byte, n/8)...)
	w.bits(0, uint(n%8))
}

func (w *bitWriter) flush() {
	if w.nacc > 0 {
		w.out = append(w.out, byte(w.acc))
		w.acc, w.nacc = 0, 0
	}
}
