package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
)

// ErrOutOfBounds is wrapped by errors about operations reaching outside the
// image, such as a crop rectangle: the request's fault, not the image's.
var ErrOutOfBounds = errors.New("out of bounds")

// Apply runs spec's operations on img, in order. No intermediate image may
// exceed maxPixels: an upscale is refused before memory is allocated for it.
// It stops with ctx's error between operations and, inside the costly ones,
// between rows, so an abandoned request frees its CPU at once.
func Apply(ctx context.Context, img image.Image, spec Spec, maxPixels int64) (*image.RGBA, error) {
	return apply(ctx, img, spec, maxPixels, img.Bounds().Size())
}

// apply is Apply with the first operation's output sized for an image of
// the given size rather than img's: after a reduced decode img is a
// fraction of the image the spec was written for, and the result must be
// the size the whole image gives.
func apply(ctx context.Context, img image.Image, spec Spec, maxPixels int64, size image.Point) (*image.RGBA, error) {
	cur := img
	for i, op := range spec.Ops {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if i > 0 {
			size = cur.Bounds().Size()
		}
		next, err := applyOp(ctx, cur, op, maxPixels, size)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, fmt.Errorf("operations[%d] %s: %w", i, op.canonical(), err)
		}
		cur = next
	}
	return toRGBACtx(ctx, cur)
}

// outputSize is the size op makes of a w×h image; for a Fill resize, the
// size it scales to before cropping. Sizes over maxPixels and crops outside
// the image are errors. Apply and the cost estimate both use it, so they
// agree on every size.
func outputSize(op Op, w, h int, maxPixels int64) (tw, th int, err error) {
	scaled := func(tw, th int) (int, int, error) {
		if int64(tw)*int64(th) > maxPixels {
			return 0, 0, fmt.Errorf("%w: result would be %dx%d, more than %d pixels", ErrTooLarge, tw, th, maxPixels)
		}
		return tw, th, nil
	}
	switch o := op.(type) {
	case Thumbnail:
		if w <= o.Size && h <= o.Size {
			return w, h, nil // never enlarge
		}
		return scaled(fitSize(w, h, o.Size, o.Size))
	case Resize:
		if o.Mode == Fit {
			bw, bh := o.Width, o.Height
			if bw == 0 {
				bw = MaxDimension
			}
			if bh == 0 {
				bh = MaxDimension
			}
			return scaled(fitSize(w, h, bw, bh))
		}
		// Fill: scale to cover, then crop the centre.
		scale := math.Max(float64(o.Width)/float64(w), float64(o.Height)/float64(h))
		return scaled(max(o.Width, int(math.Round(float64(w)*scale))), max(o.Height, int(math.Round(float64(h)*scale))))
	case Crop:
		r := image.Rect(o.X, o.Y, o.X+o.Width, o.Y+o.Height)
		if !r.In(image.Rect(0, 0, w, h)) {
			return 0, 0, fmt.Errorf("%w: rectangle %v lies outside the %dx%d image", ErrOutOfBounds, r, w, h)
		}
		return o.Width, o.Height, nil
	case Rotate:
		if o.Degrees != 180 {
			return h, w, nil
		}
		return w, h, nil
	case Flip, Grayscale, Blur, Sharpen:
		return w, h, nil
	}
	return 0, 0, fmt.Errorf("unsupported operation %T", op)
}

// applyOp runs op on img, sizing its output for an image of the given size
// (see apply).
func applyOp(ctx context.Context, img image.Image, op Op, maxPixels int64, size image.Point) (image.Image, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	tw, th, err := outputSize(op, size.X, size.Y, maxPixels)
	if err != nil {
		return nil, err
	}
	switch o := op.(type) {
	case Thumbnail:
		if tw == w && th == h {
			return img, nil
		}
		return resize(ctx, img, tw, th)
	case Resize:
		scaled, err := resize(ctx, img, tw, th)
		if err != nil || o.Mode == Fit {
			return scaled, err
		}
		x0, y0 := (tw-o.Width)/2, (th-o.Height)/2
		return crop(scaled, image.Rect(x0, y0, x0+o.Width, y0+o.Height)), nil
	}
	src, err := toRGBACtx(ctx, img)
	if err != nil {
		return nil, err
	}
	switch o := op.(type) {
	case Crop:
		return crop(src, image.Rect(o.X, o.Y, o.X+o.Width, o.Y+o.Height)), nil
	case Rotate:
		return rotate(src, o.Degrees), nil
	case Flip:
		return flip(src, o.Horizontal), nil
	case Grayscale:
		return grayscale(src), nil
	case Blur:
		return gaussian(ctx, src, o.Sigma)
	case Sharpen:
		return sharpen(ctx, src, o.Sigma, o.Amount)
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
func gaussian(ctx context.Context, src *image.RGBA, sigma float64) (*image.RGBA, error) {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	return resample(ctx, src, makeTaps(w, w, gaussianKernel(sigma), 3*sigma), makeTaps(h, h, gaussianKernel(sigma), 3*sigma))
}

// sharpen is an unsharp mask: src + amount × (src − blur(src)).
func sharpen(ctx context.Context, src *image.RGBA, sigma, amount float64) (*image.RGBA, error) {
	blurred, err := gaussian(ctx, src, sigma)
	if err != nil {
		return nil, err
	}
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
	return dst, nil
}
