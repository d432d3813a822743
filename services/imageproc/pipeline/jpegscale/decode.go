// Package jpegscale decodes JPEG images at 1, 1/2, 1/4 or 1/8 of their size
// straight from the DCT coefficients, the way libjpeg's "scaled decoding"
// (and libvips's shrink-on-load) does: at 1/8 only each block's DC term is
// needed, at 1/4 and 1/2 a 4×4 or 2×2 inverse DCT of the lowest
// frequencies. A thumbnail of a 24 MP photo then never pays for the 24
// million pixels it throws away, only for reading the entropy-coded data.
//
// It handles what cameras and the web use: baseline, extended sequential
// and progressive Huffman-coded 8-bit JPEGs, grayscale or YCbCr with 4:4:4,
// 4:2:2, 4:4:0 or 4:2:0 chroma, with or without restart intervals. Anything
// else (CMYK, RGB, arithmetic coding, 12-bit, other samplings) is reported
// with ErrUnsupported, so that the caller can decode it with image/jpeg
// instead; input image/jpeg rejects as corrupt is rejected here too.
package jpegscale

import (
	"errors"
	"fmt"
	"image"
	"io"
)

// ErrUnsupported is wrapped by errors about JPEG files this package does not
// decode but image/jpeg may: decode those with image/jpeg.
var ErrUnsupported = errors.New("jpegscale: unsupported JPEG")

// ErrFormat is wrapped by errors about input that is not a valid JPEG.
var ErrFormat = errors.New("jpegscale: invalid JPEG")

func formatError(what string) error { return fmt.Errorf("%w: %s", ErrFormat, what) }

func unsupported(what string) error { return fmt.Errorf("%w: %s", ErrUnsupported, what) }

// Config is what a JPEG's headers say about the image Decode would return.
type Config struct {
	Width, Height int
	// Gray is true for a one-component image, decoded as *image.Gray;
	// otherwise the image is *image.YCbCr with SubsampleRatio Ratio.
	Gray        bool
	Ratio       image.YCbCrSubsampleRatio
	Progressive bool
}

// ScaledSize is the size of a w×h image decoded at 1/denom: each output
// sample covers denom×denom input pixels, the last ones partly.
func ScaledSize(w, h, denom int) (int, int) {
	return (w + denom - 1) / denom, (h + denom - 1) / denom
}

// Memory is the bytes Decode allocates for the image described by cfg at
// 1/denom: the sample planes it returns (padded to whole blocks) and, for a
// progressive file, every DCT coefficient of the full-size image, kept
// until the last scan.
func (cfg Config) Memory(denom int) (image, scratch int64) {
	comps, hmax, vmax := cfg.sampling()
	mcux := int64((cfg.Width + 8*hmax - 1) / (8 * hmax))
	mcuy := int64((cfg.Height + 8*vmax - 1) / (8 * vmax))
	bs := int64(8 / denom)
	for _, c := range comps {
		blocks := mcux * int64(c.h) * mcuy * int64(c.v)
		image += blocks * bs * bs
		if cfg.Progressive {
			scratch += blocks * 64 * 2 // int16 coefficients
		}
	}
	return image, scratch + bufSize
}

// sampling is the components' sampling factors cfg implies.
func (cfg Config) sampling() (comps []sampling, hmax, vmax int) {
	if cfg.Gray {
		return []sampling{{1, 1}}, 1, 1
	}
	hmax, vmax = 1, 1
	switch cfg.Ratio {
	case image.YCbCrSubsampleRatio422:
		hmax = 2
	case image.YCbCrSubsampleRatio440:
		vmax = 2
	case image.YCbCrSubsampleRatio420:
		hmax, vmax = 2, 2
	}
	return []sampling{{hmax, vmax}, {1, 1}, {1, 1}}, hmax, vmax
}

type sampling struct{ h, v int }

// DecodeConfig reads the headers up to the first scan. It returns
// ErrUnsupported for a file Decode would not decode, as far as the headers
// tell: RGB, CMYK, arithmetic coding, other precisions and samplings.
func DecodeConfig(r io.Reader) (Config, error) {
	d := newDecoder(r, 1)
	if err := d.readHeaders(true); err != nil {
		return Config{}, err
	}
	if err := d.checkColor(); err != nil {
		return Config{}, err
	}
	return d.config(), nil
}

// Decode decodes a JPEG at 1/denom of its size, denom being 1, 2, 4 or 8,
// into an *image.Gray or *image.YCbCr of ScaledSize(width, height, denom)
// with its origin at (0, 0).
func Decode(r io.Reader, denom int) (image.Image, error) {
	switch denom {
	case 1, 2, 4, 8:
	default:
		return nil, fmt.Errorf("jpegscale: scale 1/%d: want 1/1, 1/2, 1/4 or 1/8", denom)
	}
	d := newDecoder(r, denom)
	if err := d.readHeaders(false); err != nil {
		return nil, err
	}
	return d.image()
}

// component is one of the frame's components and, once the first scan is
// read, its samples.
type component struct {
	id   byte
	h, v int  // sampling factors
	tq   byte // quantisation table
	// bw×bh blocks cover the component in whole MCUs; a non-interleaved
	// scan codes only the cw×ch of them that hold samples of the image.
	bw, bh, cw, ch int
	pix            []byte  // samples at the decoding scale, stride bw*bs
	coef           []int16 // a progressive file's, in zigzag order, 64 a block
	scanned        bool    // some scan coded it: an unscanned one stays 0, as in image/jpeg
}

// decoder holds one decode's state; the tables are rebuilt from the file.
type decoder struct {
	src   source
	bits  bitReader
	denom int
	bs    int // samples per block side at the decoding scale: 8/denom

	width, height int
	ncomp         int
	comp          [3]component
	hmax, vmax    int
	mcux, mcuy    int

	baseline, progressive bool
	jfif                  bool
	adobe                 bool
	adobeTransform        byte

	quant [4][64]int32 // in zigzag order
	huff  [2][4]huffTable
	ri    int // restart interval, in MCUs; 0 for none
	// eobrun is how many more blocks of a progressive AC scan have no
	// coefficients in its band. Like image/jpeg, only a restart resets it.
	eobrun int

	frame   bool      // a frame header was read
	started bool      // the first scan was read: the planes exist
	block   [64]int32 // the block being decoded, dequantised, natural order
}

func newDecoder(r io.Reader, denom int) *decoder {
	d := &decoder{denom: denom, bs: 8 / denom}
	d.src = source{r: r, buf: make([]byte, bufSize)}
	d.bits.src = &d.src
	return d
}

// Markers, from table B.1 of the JPEG standard (ITU T.81).
const (
	sof0  = 0xC0 // baseline
	sof1  = 0xC1 // extended sequential, Huffman
	sof2  = 0xC2 // progressive, Huffman
	dht   = 0xC4
	rst0  = 0xD0
	rst7  = 0xD7
	soi   = 0xD8
	eoi   = 0xD9
	sos   = 0xDA
	dqt   = 0xDB
	dri   = 0xDD
	app0  = 0xE0
	app14 = 0xEE
	app15 = 0xEF
	com   = 0xFE
)

// readHeaders reads segments in the order image/jpeg does, and rejects what
// it rejects: the two must agree on which files are JPEGs. With configOnly
// it stops at the first scan; otherwise it decodes every scan up to the
// end of the image.
func (d *decoder) readHeaders(configOnly bool) error {
	var tmp [2]byte
	if err := d.src.readFull(tmp[:]); err != nil {
		return err
	}
	if tmp[0] != 0xFF || tmp[1] != soi {
		return formatError("missing SOI marker")
	}
	for {
		if err := d.src.readFull(tmp[:]); err != nil {
			return err
		}
		// Bytes between segments are ignored, as libjpeg and image/jpeg
		// do: some encoders leave a few after a scan.
		for tmp[0] != 0xFF {
			tmp[0] = tmp[1]
			b, err := d.src.readByte()
			if err != nil {
				return err
			}
			tmp[1] = b
		}
		marker := tmp[1]
		if marker == 0 { // a stuffed 0xFF outside a scan: ignored too
			continue
		}
		for marker == 0xFF { // fill bytes before a marker
			b, err := d.src.readByte()
			if err != nil {
				return err
			}
			marker = b
		}
		if marker == eoi {
			if configOnly {
				return formatError("missing SOS marker")
			}
			return nil
		}
		if rst0 <= marker && marker <= rst7 {
			continue // a stray restart marker after the last scan
		}
		if err := d.src.readFull(tmp[:]); err != nil {
			return err
		}
		n := int(tmp[0])<<8 | int(tmp[1]) - 2
		if n < 0 {
			return formatError("short segment length")
		}
		var err error
		switch {
		case marker == sof0 || marker == sof1 || marker == sof2:
			d.baseline, d.progressive = marker == sof0, marker == sof2
			err = d.readSOF(n)
		case marker == dht:
			err = d.readDHT(n)
		case marker == dqt:
			err = d.readDQT(n)
		case marker == sos:
			if configOnly {
				if !d.frame {
					return formatError("missing SOF marker")
				}
				return nil
			}
			err = d.readSOS(n)
		case marker == dri:
			err = d.readDRI(n)
		case marker == app0:
			err = d.readApp0(n)
		case marker == app14:
			err = d.readApp14(n)
		case app0 <= marker && marker <= app15 || marker == com:
			err = d.src.skip(n)
		case marker < 0xC0:
			err = formatError("unknown marker")
		default: // other frame types: lossless, arithmetic coding, hierarchical
			err = unsupported(fmt.Sprintf("marker %#x", marker))
		}
		if err != nil {
			return err
		}
	}
}

func (d *decoder) readSOF(n int) error {
	if d.frame {
		return formatError("multiple SOF markers")
	}
	if n != 6+3*1 && n != 6+3*3 {
		return unsupported("number of components")
	}
	var b [6 + 3*3]byte
	if err := d.src.readFull(b[:n]); err != nil {
		return err
	}
	if b[0] != 8 {
		return unsupported(fmt.Sprintf("%d-bit precision", b[0]))
	}
	d.height = int(b[1])<<8 | int(b[2])
	d.width = int(b[3])<<8 | int(b[4])
	d.ncomp = int(b[5])
	if d.ncomp != (n-6)/3 {
		return formatError("SOF has wrong length")
	}
	var odd error // sampling that is valid but not decoded here
	for i := range d.ncomp {
		c := &d.comp[i]
		c.id, c.tq = b[6+3*i], b[8+3*i]
		for j := range i {
			if d.comp[j].id == c.id {
				return formatError("repeated component identifier")
			}
		}
		if c.tq > 3 {
			return formatError("bad Tq value")
		}
		c.h, c.v = int(b[7+3*i]>>4), int(b[7+3*i]&0x0F)
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 {
			return formatError("luma/chroma subsampling ratio")
		}
		switch {
		case c.h == 3 || c.v == 3:
			odd = unsupported("sampling factor 3")
		case d.ncomp == 1:
			// One component is not interleaved, whatever its factors say:
			// each MCU is one block (ITU T.81, A.2).
			c.h, c.v = 1, 1
		case i == 0 && (c.h > 2 || c.v > 2), i > 0 && (c.h != 1 || c.v != 1):
			odd = unsupported("chroma subsampling")
		}
	}
	if odd != nil {
		return odd
	}
	if d.width == 0 || d.height == 0 {
		return unsupported("empty image, or height set by a DNL marker")
	}
	d.hmax, d.vmax = d.comp[0].h, d.comp[0].v
	d.mcux = (d.width + 8*d.hmax - 1) / (8 * d.hmax)
	d.mcuy = (d.height + 8*d.vmax - 1) / (8 * d.vmax)
	for i := range d.ncomp {
		c := &d.comp[i]
		c.bw, c.bh = d.mcux*c.h, d.mcuy*c.v
		c.cw = ((d.width*c.h+d.hmax-1)/d.hmax + 7) / 8
		c.ch = ((d.height*c.v+d.vmax-1)/d.vmax + 7) / 8
	}
	d.frame = true
	return nil
}

func (d *decoder) readDQT(n int) error {
	var b [128]byte
	for n > 0 {
		n--
		x, err := d.src.readByte()
		if err != nil {
			return err
		}
		tq := x & 0x0F
		if tq > 3 {
			return formatError("bad Tq value")
		}
		q := &d.quant[tq]
		switch x >> 4 {
		case 0:
			if n < 64 {
				return d.shortDQT(n)
			}
			n -= 64
			if err := d.src.readFull(b[:64]); err != nil {
				return err
			}
			for i := range q {
				q[i] = int32(b[i])
			}
		case 1:
			if n < 128 {
				return d.shortDQT(n)
			}
			n -= 128
			if err := d.src.readFull(b[:128]); err != nil {
				return err
			}
			for i := range q {
				q[i] = int32(b[2*i])<<8 | int32(b[2*i+1])
			}
		default:
			return formatError("bad Pq value")
		}
	}
	return nil
}

// shortDQT is what image/jpeg makes of a table cut short by its segment's
// end: nothing, when the segment ends right after the table's first byte.
func (d *decoder) shortDQT(n int) error {
	if n != 0 {
		return formatError("DQT has wrong length")
	}
	return nil
}

func (d *decoder) readDRI(n int) error {
	if n != 2 {
		return formatError("DRI has wrong length")
	}
	var b [2]byte
	if err := d.src.readFull(b[:]); err != nil {
		return err
	}
	d.ri = int(b[0])<<8 | int(b[1])
	return nil
}

func (d *decoder) readApp0(n int) error {
	if n < 5 {
		return d.src.skip(n)
	}
	var b [5]byte
	if err := d.src.readFull(b[:]); err != nil {
		return err
	}
	d.jfif = string(b[:]) == "JFIF\x00"
	return d.src.skip(n - 5)
}

func (d *decoder) readApp14(n int) error {
	if n < 12 {
		return d.src.skip(n)
	}
	var b [12]byte
	if err := d.src.readFull(b[:]); err != nil {
		return err
	}
	if string(b[:5]) == "Adobe" {
		d.adobe, d.adobeTransform = true, b[11]
	}
	return d.src.skip(n - 12)
}

// checkColor rejects three components that image/jpeg reads as RGB rather
// than YCbCr: no JFIF marker, and an Adobe marker saying "no transform" or
// components named R, G and B.
func (d *decoder) checkColor() error {
	if d.ncomp == 3 && !d.jfif &&
		(d.adobe && d.adobeTransform == 0 || d.comp[0].id == 'R' && d.comp[1].id == 'G' && d.comp[2].id == 'B') {
		return unsupported("RGB components")
	}
	return nil
}

func (d *decoder) config() Config {
	cfg := Config{Width: d.width, Height: d.height, Gray: d.ncomp == 1, Progressive: d.progressive}
	switch {
	case d.hmax == 2 && d.vmax == 2:
		cfg.Ratio = image.YCbCrSubsampleRatio420
	case d.hmax == 2:
		cfg.Ratio = image.YCbCrSubsampleRatio422
	case d.vmax == 2:
		cfg.Ratio = image.YCbCrSubsampleRatio440
	default:
		cfg.Ratio = image.YCbCrSubsampleRatio444
	}
	return cfg
}

// allocate makes the sample planes (and a progressive file's coefficients)
// when the first scan starts, as image/jpeg does.
func (d *decoder) allocate() {
	for i := range d.ncomp {
		c := &d.comp[i]
		c.pix = make([]byte, c.bw*d.bs*c.bh*d.bs)
		if d.progressive {
			c.coef = make([]int16, c.bw*c.bh*64)
		}
	}
	d.started = true
}

// image finishes the decode: a progressive file's blocks are transformed
// now that every scan has refined them.
func (d *decoder) image() (image.Image, error) {
	if !d.started {
		return nil, formatError("missing SOS marker")
	}
	if err := d.checkColor(); err != nil {
		return nil, err
	}
	if d.progressive {
		d.transformAll()
	}
	w, h := ScaledSize(d.width, d.height, d.denom)
	r := image.Rect(0, 0, w, h)
	y := &d.comp[0]
	if d.ncomp == 1 {
		return &image.Gray{Pix: y.pix, Stride: y.bw * d.bs, Rect: r}, nil
	}
	return &image.YCbCr{
		Y: y.pix, Cb: d.comp[1].pix, Cr: d.comp[2].pix,
		YStride: y.bw * d.bs, CStride: d.comp[1].bw * d.bs,
		SubsampleRatio: d.config().Ratio,
		Rect:           r,
	}, nil
}
