package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/jpegscale"
)

// Encode writes img in spec's format.
func Encode(w io.Writer, img image.Image, spec Spec) error {
	var err error
	switch spec.Format {
	case JPEG:
		err = jpeg.Encode(w, img, &jpeg.Options{Quality: spec.Quality})
	case PNG:
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(w, img)
	default:
		return fmt.Errorf("encode: unsupported format %q", spec.Format)
	}
	if err != nil {
		return fmt.Errorf("encode %s: %w", spec.Format, err)
	}
	return nil
}

// Result describes an encoded variant.
type Result struct {
	Width, Height int
	ContentType   string
}

// Estimate is what decoding the image info describes and running spec on it
// costs, known before any pixel is decoded.
func Estimate(info Info, spec Spec, maxPixels int64) (Cost, error) {
	return runCost(info, spec, maxPixels)
}

// Run decodes src, applies spec and encodes to dst: everything a variant
// needs, for imageproc and the worker alike. What would exceed lim is
// refused from the header, before decoding. When ctx ends Run stops, at
// the next read of src, operation or band of rows, and returns ctx's error.
func Run(ctx context.Context, dst io.Writer, src io.ReadSeeker, spec Spec, lim Limits) (Result, error) {
	info, err := Probe(src, lim.MaxPixels)
	if err != nil {
		return Result{}, err
	}
	if err := checkCost(info, spec, lim); err != nil {
		return Result{}, err
	}
	img, err := decodeProbed(ctx, src, info, loadScale(info, spec, lim.MaxPixels))
	if errors.Is(err, jpegscale.ErrUnsupported) {
		// Something the header did not show (a Huffman table image/jpeg
		// reads its own way, say): the standard decoder decodes it at full
		// size, if the budget allows that too.
		info.scalable = nil
		if err := checkCost(info, spec, lim); err != nil {
			return Result{}, err
		}
		img, err = decodeProbed(ctx, src, info, 1)
	}
	if err != nil {
		return Result{}, err
	}
	// A reduced decode is smaller than the image: the first operation sizes
	// its output for the whole one.
	out, err := apply(ctx, img, spec, lim.MaxPixels, image.Pt(info.Width, info.Height))
	if err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err := Encode(dst, out, spec); err != nil {
		return Result{}, err
	}
	return Result{Width: out.Rect.Dx(), Height: out.Rect.Dy(), ContentType: spec.Format.ContentType()}, nil
}

// checkCost refuses spec on the image info describes when what it would
// decode (as info says it will be decoded) or compute exceeds lim.
func checkCost(info Info, spec Spec, lim Limits) error {
	cost, err := runCost(info, spec, lim.MaxPixels)
	if err != nil {
		return err
	}
	return cost.Check(lim, fmt.Sprintf("%s of this %dx%d %s", spec, info.Width, info.Height, info.Format))
}
