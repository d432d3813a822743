package pipeline

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/jpegscale"
)

// A run's cost is worked out from the image's header and the spec alone,
// before a single pixel is decoded, so an image or a chain of operations
// that would not fit is refused while it still costs nothing. MAX_PIXELS
// alone does not bound memory: a 7000×7000 16-bit RGBA PNG is 49 MP, legal,
// only 381 KB as a file, and 392 MB once decoded; nor does it bound time: a
// blur of σ 50 reads 301 pixels per pixel and pass.

// Limits bound what one run may cost. Zero MaxMemory or MaxWork means no
// bound of that kind; MaxPixels is always enforced.
type Limits struct {
	// MaxPixels bounds width × height of any image decoded or produced.
	MaxPixels int64
	// MaxMemory bounds the bytes a run holds at once: the decoded image,
	// the decoder's own working memory, and each operation's input, output
	// and scratch.
	MaxMemory int64
	// MaxWork bounds the work of the operations, in work units: one unit is
	// one pixel through one filter tap (four multiply-adds); per-pixel
	// operations cost one unit per pixel.
	MaxWork int64
}

// DefaultMaxWork lets through every chain the page presets and the worker
// use on the largest photos MAX_PIXELS allows (a resize of a 50 MP photo
// costs about 0.6e9), and refuses what takes many seconds of a core: a
// blur of σ 50 on a 4 MP photo costs 2.4e9.
const DefaultMaxWork = 1_000_000_000

// ErrOverBudget is wrapped by errors about runs that would exceed
// Limits.MaxMemory or Limits.MaxWork. It wraps ErrTooLarge: the image is
// too large for what is asked of it.
var ErrOverBudget = fmt.Errorf("%w for the transform budget", ErrTooLarge)

// ErrOverMemory is an ErrOverBudget for Limits.MaxMemory: a pod with more
// memory, or fewer transforms at once, could run it.
var ErrOverMemory = fmt.Errorf("%w", ErrOverBudget)

// Memory budget of one run, from the container's memory limit:
//
//	(limit × 9/10 − 64 MiB) / concurrency
//
// 9/10 of the limit is the soft limit the Go runtime is given (GOMEMLIMIT),
// so its garbage collector works to stay under it while the kernel's OOM
// killer acts only at the hard limit; 64 MiB is the rest of the process
// (runtime, gRPC buffers, uploads in flight, the store); what remains is
// shared by the transforms that may run at once. For imageproc's 512 MiB
// limit and one transform at a time, that is about 397 MiB.
const processReserve = 64 << 20

// SoftMemoryLimit is the limit to give the Go runtime (debug.SetMemoryLimit)
// in a container limited to limit bytes: nine tenths of it.
func SoftMemoryLimit(limit int64) int64 { return limit - limit/10 }

// MemoryBudget is Limits.MaxMemory for one of concurrency runs in a process
// limited to limit bytes; 0 (no bound) when limit is 0. A limit too small
// for the reserve leaves a budget of one byte: every run is refused, with an
// error saying so, rather than the process being killed.
func MemoryBudget(limit int64, concurrency int) int64 {
	if limit <= 0 {
		return 0
	}
	return max(1, (SoftMemoryLimit(limit)-processReserve)/int64(max(1, concurrency)))
}

// Cost is what running a spec on an image takes.
type Cost struct {
	// Memory is the most bytes alive at once, counting every image an
	// operation still references as alive until it returns.
	Memory int64
	// Decoded is the bytes of the decoded image alone.
	Decoded int64
	// Work is the operations' work units (see Limits.MaxWork); decoding is
	// not counted, as MaxPixels bounds it.
	Work int64
	// Costliest names the operation with the most work, or "decode".
	Costliest string
	costliest int64
}

// Check reports whether c fits lim, as an ErrOverBudget error saying what
// exceeds it; what names the run ("thumbnail(256)|format(png) of this
// 7000x7000 png").
func (c Cost) Check(lim Limits, what string) error {
	if lim.MaxMemory > 0 && c.Memory > lim.MaxMemory {
		return fmt.Errorf("%w: %s needs about %s of memory at once (%s for the decoded image), more than the %s one transform may use",
			ErrOverMemory, what, mb(c.Memory), mb(c.Decoded), mb(lim.MaxMemory))
	}
	if lim.MaxWork > 0 && c.Work > lim.MaxWork {
		return fmt.Errorf("%w: %s needs %.2g work units (%s the most), more than the %.2g one transform may use",
			ErrOverBudget, what, float64(c.Work), c.Costliest, float64(lim.MaxWork))
	}
	return nil
}

func mb(b int64) string { return fmt.Sprintf("%d MB", (b+500_000)/1_000_000) }

// decoding is what the decoder of an image allocates, from its header.
type decoding struct {
	image   int64 // bytes of the decoded image
	scratch int64 // the decoder's working memory, alive until it returns
	kind    imageKind
	sx, sy  int // JPEG chroma subsampling, for resize's YCbCr path
}

// imageKind is how the pipeline treats a decoded image.
type imageKind int

const (
	kindOther imageKind = iota // converted to RGBA by the first operation
	kindRGBA                   // used as it is
	kindYCbCr                  // resized from its planes, else converted
)

// decodingOf estimates what decoding costs, from the header: the format,
// the color model DecodeConfig reports and, for JPEG and PNG, details of
// the header bytes in head. Where the header leaves a choice open, it
// assumes the costlier one.
func decodingOf(format string, model color.Model, w, h int, head []byte) decoding {
	px := int64(w) * int64(h)
	switch format {
	case "jpeg":
		return jpegDecoding(head, w, h)
	case "png":
		d := decoding{image: int64(math.Ceil(bytesPerPixel(model) * float64(px)))}
		if model == color.RGBAModel {
			d.kind = kindRGBA
		}
		// Interlaced (Adam7) images are decoded pass by pass into images of
		// their own, the largest half the size of the whole, then merged.
		if len(head) > 28 && head[28] == 1 {
			d.scratch = d.image / 2
		}
		return d
	case "gif":
		return decoding{image: px} // paletted; only the first frame is decoded
	case "webp":
		// DecodeConfig reports YCbCr for an extended (VP8X) file whatever its
		// chunk holds, so assume the costlier lossless decoder: ARGB pixels
		// while decoding, then an NRGBA image.
		return decoding{image: 4 * px, scratch: 4 * px}
	}
	return decoding{image: int64(math.Ceil(bytesPerPixel(model) * float64(px)))}
}

func bytesPerPixel(m color.Model) float64 {
	switch m {
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.Gray16Model, color.Alpha16Model:
		return 2
	case color.YCbCrModel:
		return 3
	case color.NYCbCrAModel, color.RGBAModel, color.NRGBAModel, color.CMYKModel:
		return 4
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 8 // RGBA64, NRGBA64, or a model unknown here: the widest
}

// jpegDecoding reads the frame header (SOF) to learn the components, their
// sampling and whether the file is progressive: image/jpeg keeps every DCT
// coefficient of a progressive file (an int32 per sample) until the last
// scan, five times the memory of the image itself.
func jpegDecoding(head []byte, w, h int) decoding {
	f, ok := jpegFrame(head)
	if !ok {
		// No frame header in the bytes read: assume the costliest common
		// case, three full-resolution RGB components, progressive.
		f = frame{progressive: true, rgb: true, comps: []sampling{{1, 1}, {1, 1}, {1, 1}}}
	}
	hmax, vmax := 1, 1
	for _, c := range f.comps {
		hmax, vmax = max(hmax, c.h), max(vmax, c.v)
	}
	// The decoder's planes cover whole MCUs.
	mw := int64((w + 8*hmax - 1) / (8 * hmax))
	mh := int64((h + 8*vmax - 1) / (8 * vmax))
	var samples int64
	for _, c := range f.comps {
		samples += mw * 8 * int64(c.h) * mh * 8 * int64(c.v)
	}
	d := decoding{image: samples}
	if f.progressive {
		d.scratch = 4 * samples
	}
	px := int64(w) * int64(h)
	switch {
	case len(f.comps) == 3 && f.rgb:
		// Stored as RGB: the planes, then a new RGBA image.
		d.scratch += d.image
		d.image, d.kind = 4*px, kindRGBA
	case len(f.comps) == 3:
		if f.comps[0].h == hmax && f.comps[0].v == vmax && f.comps[1] == f.comps[2] {
			d.kind, d.sx, d.sy = kindYCbCr, hmax/f.comps[1].h, vmax/f.comps[1].v
		}
	case len(f.comps) == 4:
		// CMYK and YCCK: the planes, then a CMYK image.
		d.scratch += d.image
		d.image = 4 * px
	}
	return d
}

type sampling struct{ h, v int }

type frame struct {
	progressive bool
	rgb         bool // three components that image/jpeg reads as RGB
	comps       []sampling
}

// jpegFrame reads the segments at the start of a JPEG file up to its first
// scan, as image/jpeg does, for the frame header and the markers that say
// how the components are coded; ok is false if the frame header lies
// beyond b or the bytes are damaged.
func jpegFrame(b []byte) (f frame, ok bool) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return frame{}, false
	}
	var jfif, adobeRGB bool
	var ids []byte
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return frame{}, false
		}
		marker := b[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		if marker == 0xDA { // the first scan: every header is known
			if !ok {
				return frame{}, false
			}
			f.rgb = len(ids) == 3 && !jfif && (adobeRGB || string(ids) == "RGB")
			return f, true
		}
		size := int(b[i+2])<<8 | int(b[i+3])
		if size < 2 || i+2+size > len(b) {
			return frame{}, false
		}
		seg := b[i+4 : i+2+size]
		switch marker {
		case 0xE0: // APP0
			jfif = jfif || bytes.HasPrefix(seg, []byte("JFIF\x00"))
		case 0xEE: // APP14
			if len(seg) >= 12 && bytes.HasPrefix(seg, []byte("Adobe")) {
				adobeRGB = seg[11] == 0 // transform "unknown", in practice RGB
			}
		case 0xC0, 0xC1, 0xC2: // the frame headers image/jpeg decodes
			if ok || len(seg) < 6 {
				return frame{}, false
			}
			n := int(seg[5])
			if n != 1 && n != 3 && n != 4 || len(seg) < 6+3*n {
				return frame{}, false
			}
			f.progressive = marker == 0xC2
			for c := range n {
				ids = append(ids, seg[6+3*c])
				hv := seg[6+3*c+1]
				s := sampling{int(hv >> 4), int(hv & 0x0F)}
				if s.h < 1 || s.h > 4 || s.v < 1 || s.v > 4 {
					return frame{}, false
				}
				f.comps = append(f.comps, s)
			}
			ok = true
		case 0xD9:
			return frame{}, false
		}
		i += 2 + size
	}
	return frame{}, false
}

// loadMargin is how much larger than the first resize's output, in each
// dimension, a reduced JPEG decode must stay. A reduced decode averages
// each 2×2, 4×4 or 8×8 block of pixels (up to the frequencies the reduced
// inverse DCT leaves out) at a fixed grid: on its own it is a box filter,
// which aliases. Leaving the rest of the pipeline at least 2× to reduce
// means resize's Lanczos-3 still does the final filtering, over at least
// two decoded samples per output pixel, so the thumbnail stays close to a
// Lanczos resample of the whole image (the tests bound the difference), as
// the 2× the box shrink leaves Lanczos does for the same reason.
const loadMargin = 2

// loadScale is the 1/denom to decode info's image at for spec: the
// smallest jpegscale allows that still leaves the first operation, when it
// is a shrinking thumbnail or resize, loadMargin× to reduce; 1 otherwise.
// Other operations need every pixel.
func loadScale(info Info, spec Spec, maxPixels int64) int {
	if info.scalable == nil || len(spec.Ops) == 0 {
		return 1
	}
	switch spec.Ops[0].(type) {
	case Thumbnail, Resize:
	default:
		return 1
	}
	tw, th, err := outputSize(spec.Ops[0], info.Width, info.Height, maxPixels)
	if err != nil {
		return 1
	}
	for _, denom := range []int{8, 4, 2} {
		if w, h := jpegscale.ScaledSize(info.Width, info.Height, denom); w >= loadMargin*tw && h >= loadMargin*th {
			return denom
		}
	}
	return 1
}

// scaledDecoding is what jpegscale allocates decoding cfg's image at
// 1/denom: planes of that size, and a progressive file's coefficients.
func scaledDecoding(cfg jpegscale.Config, denom int) decoding {
	img, scratch := cfg.Memory(denom)
	d := decoding{image: img, scratch: scratch}
	if !cfg.Gray {
		d.kind = kindYCbCr
		d.sx, d.sy = chromaFactors(cfg.Ratio)
	}
	return d
}

// costing walks a spec through the sizes it produces, the way Apply runs
// it, adding up work and keeping the peak of memory.
type costing struct {
	w, h  int
	bytes int64 // the current image
	kind  imageKind
	sx    int
	sy    int
	cost  Cost
}

func (c *costing) peak(bytes int64) { c.cost.Memory = max(c.cost.Memory, bytes) }

func (c *costing) work(what string, units int64) {
	c.cost.Work += units
	if units > c.cost.costliest {
		c.cost.costliest, c.cost.Costliest = units, what
	}
}

func (c *costing) px() int64 { return int64(c.w) * int64(c.h) }

// rgba is the extra memory of converting the current image to RGBA.
func (c *costing) rgba() int64 {
	if c.kind == kindRGBA {
		return 0
	}
	return 4 * c.px()
}

// become makes the current image a new w×h RGBA one.
func (c *costing) become(w, h int) {
	c.w, c.h, c.kind = w, h, kindRGBA
	c.bytes = 4 * c.px()
}

// runCost is the cost of decoding an image described by info and running
// spec on it.
func runCost(info Info, spec Spec, maxPixels int64) (Cost, error) {
	d := info.decoding
	denom := loadScale(info, spec, maxPixels)
	if denom > 1 {
		d = scaledDecoding(*info.scalable, denom)
	}
	// The size decoded, upright.
	w, h := jpegscale.ScaledSize(info.Width, info.Height, denom)
	c := &costing{w: w, h: h, bytes: d.image, kind: d.kind, sx: d.sx, sy: d.sy}
	c.cost.Decoded = d.image
	if info.Orientation >= 5 { // the decoder sees the stored, unturned axes
		c.w, c.h = c.h, c.w
	}
	c.peak(d.image + d.scratch)
	if info.Orientation >= 2 {
		// orient: to RGBA, then up to two turns or flips, each a new image.
		c.peak(c.bytes + c.rgba())
		c.peak(c.rgba() + 8*c.px())
		c.work("orient", 2*c.px())
		c.become(w, h)
	}
	for i, op := range spec.Ops {
		// The first operation sizes its output for the whole image, even
		// when a reduced one was decoded (see apply).
		from := image.Pt(c.w, c.h)
		if i == 0 {
			from = image.Pt(info.Width, info.Height)
		}
		if err := c.op(op, maxPixels, from); err != nil {
			return Cost{}, fmt.Errorf("operations[%d] %s: %w", i, op.canonical(), err)
		}
	}
	c.peak(c.bytes + c.rgba()) // Apply's result is RGBA
	// What a run holds besides the images: the header Probe keeps, the
	// read buffers and the encoder's state. PNG's zlib compressor alone
	// takes over a megabyte (window, hash chains, row filters); image/jpeg's
	// encoder a few KB, so a quarter megabyte covers a JPEG run's extras.
	// A thumbnail from a reduced decode is small enough that a megabyte
	// would be most of its estimate.
	if spec.Format == JPEG {
		c.cost.Memory += 256 << 10
	} else {
		c.cost.Memory += 1 << 20
	}
	if c.cost.Costliest == "" {
		c.cost.Costliest = "decode"
	}
	return c.cost, nil
}

func (c *costing) op(op Op, maxPixels int64, from image.Point) error {
	what := op.canonical()
	tw, th, err := outputSize(op, from.X, from.Y, maxPixels)
	if err != nil {
		return err
	}
	px := c.px()
	switch o := op.(type) {
	case Thumbnail:
		if tw == c.w && th == c.h {
			return nil // never enlarged: returned as it is
		}
		c.resize(what, tw, th)
	case Resize:
		in := c.bytes
		c.resize(what, tw, th)
		if o.Mode == Fill { // then the centre is cropped into a new image
			c.peak(in + c.bytes + 4*int64(o.Width)*int64(o.Height))
			c.work(what, int64(o.Width)*int64(o.Height))
			c.become(o.Width, o.Height)
		}
	case Crop, Rotate, Flip, Grayscale:
		c.peak(c.bytes + c.rgba() + 4*int64(tw)*int64(th))
		c.work(what, px+int64(tw)*int64(th))
		c.become(tw, th)
	case Blur:
		c.blur(what, o.Sigma, 0)
	case Sharpen:
		// The blurred copy, then the mask into a new image.
		c.blur(what, o.Sigma, 4*px)
	}
	return nil
}

// resize mirrors resize(): a box shrink (from the YCbCr planes when it
// can), then Lanczos-3.
func (c *costing) resize(what string, tw, th int) {
	if tw == c.w && th == c.h {
		c.peak(c.bytes + c.rgba())
		c.work(what, c.px())
		c.become(tw, th)
		return
	}
	k := min(c.w/tw, c.h/th) / 2
	in := c.bytes
	mw, mh := c.w, c.h
	var mid int64
	if c.kind == kindYCbCr && k-k%max(c.sx, c.sy) >= 2 {
		k -= k % max(c.sx, c.sy)
		mw, mh = (c.w+k-1)/k, (c.h+k-1)/k
		mid = 16 * int64(mw) * int64(mh) // three planes of sums, then RGBA
		c.peak(in + mid)
		c.work(what, c.px())
	} else {
		conv := c.rgba()
		c.peak(in + conv)
		if k >= 2 {
			mw, mh = (c.w+k-1)/k, (c.h+k-1)/k
			mid = 4 * int64(mw) * int64(mh)
			c.peak(in + conv + mid)
			c.work(what, c.px())
		}
		in += conv
	}
	tx, ty := tapCount(mw, tw, 3), tapCount(mh, th, 3)
	c.peak(in + mid + resampleScratch(tw, th, tx, ty) + 4*int64(tw)*int64(th))
	c.work(what, int64(tw)*int64(mh)*int64(tx)+int64(tw)*int64(th)*int64(ty))
	c.become(tw, th)
}

// blur mirrors gaussian(), plus extra bytes alive beside it (sharpen's
// output).
func (c *costing) blur(what string, sigma float64, extra int64) {
	n := func(l int) int { return min(l, int(math.Ceil(6*sigma))+2) }
	tx, ty := n(c.w), n(c.h)
	px := c.px()
	c.peak(c.bytes + c.rgba() + resampleScratch(c.w, c.h, tx, ty) + 4*px + extra)
	c.work(what, px*int64(tx+ty)+extra/4)
	c.become(c.w, c.h)
}

// tapCount is the most taps makeTaps gives one output pixel when srcLen
// becomes dstLen with a kernel of the given support.
func tapCount(srcLen, dstLen int, support float64) int {
	scale := max(float64(srcLen)/float64(dstLen), 1)
	return min(srcLen, int(math.Ceil(2*support*scale))+2)
}

// resampleScratch is resample's working memory for a w×h output: the
// weights, and the ring of ty horizontally filtered rows.
func resampleScratch(w, h, tx, ty int) int64 {
	return 4*(int64(w)*int64(tx)+int64(h)*int64(ty)) + 16*int64(w)*int64(ty+1) + 64*int64(w+h)
}
