package pipeline

import (
	"fmt"
	"image"
	"math"
)

// Apply runs spec's operations on img, in order. No intermediate image may
// exceed maxPixels: an upscale is refused before memory is allocated for it.
func Apply(img image.Image, spec Spec, maxPixels int64) (*image.RGBA, error) {
	cur := img
	for i, op := range spec.Ops {
		next, err := applyOp(cur, op, maxPixels)
		if err != nil {
			return nil, fmt.Errorf("operations[%d] %s: %w", i, op.canonical(), err)
		}
		cur = next
	}
	return toRGBA(cur), nil
}

func applyOp(img image.Image, op Op, maxPixels int64) (image.Image, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	scaleTo := func(img image.Image, tw, th int) (image.Image, error) {
		if int64(tw)*int64(th) > maxPixels {
			return nil, fmt.Errorf("%w: result would be %dx%d, more than %d pixels", ErrTooLarge, tw, th, maxPixels)
		}
		return resize(img, tw, th), nil
	}
	switch o := op.(type) {
	case Thumbnail:
		if w <= o.Size && h <= o.Size {
			return img, nil // never enlarge
		}
		tw, th := fitSize(w, h, o.Size, o.Size)
		return scaleTo(img, tw, th)
	case Resize:
		if o.Mode == Fit {
			bw, bh := o.Width, o.Height
			if bw == 0 {
				bw = MaxDimension
			}
			if bh == 0 {
				bh = MaxDimension
			}
			tw, th := fitSize(w, h, bw, bh)
			return scaleTo(img, tw, th)
		}
		// Fill: scale to cover, then crop the centre.
		scale := math.Max(float64(o.Width)/float64(w), float64(o.Height)/float64(h))
		cw := max(o.Width, int(math.Round(float64(w)*scale)))
		ch := max(o.Height, int(math.Round(float64(h)*scale)))
		scaled, err := scaleTo(img, cw, ch)
		if err != nil {
			return nil, err
		}
		x0, y0 := (cw-o.Width)/2, (ch-o.Height)/2
		return crop(toRGBA(scaled), image.Rect(x0, y0, x0+o.Width, y0+o.Height)), nil
	case Crop:
		r := image.Rect(o.X, o.Y, o.X+o.Width, o.Y+o.Height)
		if !r.In(image.Rect(0, 0, w, h)) {
			return nil, fmt.Errorf("rectangle %v lies outside the %dx%d image", r, w, h)
		}
		return crop(toRGBA(img), r), nil
	case Rotate:
		return rotate(toRGBA(img), o.Degrees), nil
	case Flip:
		return flip(toRGBA(img), o.Horizontal), nil
	case Grayscale:
		return grayscale(toRGBA(img)), nil
	case Blur:
		return gaussian(toRGBA(img), o.Sigma), nil
	case Sharpen:
		return sharpen(toRGBA(img), o.Sigma, o.Amount), nil
	}
	return nil, fmt.Errorf("unsupported operation %T", op)
}

// fitSize scales w×h to fit inside bw×bh, keeping the ratio; at least 1×1.
func fitSize(w, h, bw, bh int) (int, int) {
	scale := math.Min(float64(bw)/float64(w), float64(bh)/float64(h))
	return max(1, int(math.Round(float64(w)*scale))), max(1, int(math.Round(float64(h)*scale)))
}

func crop(src *image.RGBA, r image.Rectangle) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	for y := range r.Dy() {
		copy(dst.Pix[y*dst.Stride:][:4*r.Dx()], src.Pix[(r.Min.Y+y)*src.Stride+4*r.Min.X:])
	}
	return dst
}

// rotate turns src clockwise by 90, 180 or 270 degrees.
func rotate(src *image.RGBA, degrees int) *image.RGBA {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	var dst *image.RGBA
	var at func(x, y int) (int, int) // destination of source pixel (x, y)
	switch degrees {
	case 90:
		dst = image.NewRGBA(image.Rect(0, 0, h, w))
		at = func(x, y int) (int, int) { return h - 1 - y, x }
	case 180:
		dst = image.NewRGBA(image.Rect(0, 0, w, h))
		at = func(x, y int) (int, int) { return w - 1 - x, h - 1 - y }
	default: // 270
		dst = image.NewRGBA(image.Rect(0, 0, h, w))
		at = func(x, y int) (int, int) { return y, w - 1 - x }
	}
	for y := range h {
		for x := range w {
			dx, dy := at(x, y)
			copy(dst.Pix[dy*dst.Stride+4*dx:][:4], src.Pix[y*src.Stride+4*x:])
		}
	}
	return dst
}

func flip(src *image.RGBA, horizontal bool) *image.RGBA {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		srow := src.Pix[y*src.Stride:][:4*w]
		if !horizontal {
			copy(dst.Pix[(h-1-y)*dst.Stride:], srow)
			continue
		}
		drow := dst.Pix[y*dst.Stride:][:4*w]
		for x := range w {
			copy(drow[4*(w-1-x):][:4], srow[4*x:])
		}
	}
	return dst
}

// grayscale uses the Rec. 601 luma weights (as image/color does).
func grayscale(src *image.RGBA) *image.RGBA {
	dst := image.NewRGBA(src.Rect)
	for i := 0; i < len(src.Pix); i += 4 {
		p := src.Pix[i:][:4]
		y := uint8((19595*uint32(p[0]) + 38470*uint32(p[1]) + 7471*uint32(p[2]) + 1<<15) >> 16)
		q := dst.Pix[i:][:4]
		q[0], q[1], q[2], q[3] = y, y, y, p[3]
	}
	return dst
}

func gaussianKernel(sigma float64) func(float64) float64 {
	return func(x float64) float64 { return math.Exp(-x * x / (2 * sigma * sigma)) }
}

// gaussian blurs with a separable kernel of radius 3σ, edges clamped.
// makeTaps at scale 1 with the Gaussian as kernel gives exactly the clamped,
// normalised convolution weights.
func gaussian(src *image.RGBA, sigma float64) *image.RGBA {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	return resample(src, makeTaps(w, w, gaussianKernel(sigma), 3*sigma), makeTaps(h, h, gaussianKernel(sigma), 3*sigma))
}

// sharpen is an unsharp mask: src + amount × (src − blur(src)).
func sharpen(src *image.RGBA, sigma, amount float64) *image.RGBA {
	blurred := gaussian(src, sigma)
	dst := image.NewRGBA(src.Rect)
	a := float32(amount)
	for i := 0; i < len(src.Pix); i += 4 {
		alpha := src.Pix[i+3]
		for c := range 3 {
			s := float32(src.Pix[i+c])
			dst.Pix[i+c] = min(clamp8(s+a*(s-float32(blurred.Pix[i+c]))), alpha)
		}
		dst.Pix[i+3] = alpha
	}
	return dst
}
