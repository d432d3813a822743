package pipeline

import (
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
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

// Run decodes src (at most maxPixels), applies spec and encodes to dst:
// everything a variant needs, for imageproc and the worker alike.
func Run(dst io.Writer, src io.ReadSeeker, spec Spec, maxPixels int64) (Result, error) {
	img, _, err := Decode(src, maxPixels)
	if err != nil {
		return Result{}, err
	}
	out, err := Apply(img, spec, maxPixels)
	if err != nil {
		return Result{}, err
	}
	if err := Encode(dst, out, spec); err != nil {
		return Result{}, err
	}
	return Result{Width: out.Rect.Dx(), Height: out.Rect.Dy(), ContentType: spec.Format.ContentType()}, nil
}
