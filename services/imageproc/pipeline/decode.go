package pipeline

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"

	// Decoders for the formats an upload may be in.
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/webp"
)

// ErrTooLarge is wrapped by errors about images over the pixel limit.
var ErrTooLarge = errors.New("image too large")

// ErrInvalid is wrapped by errors about input that is not a whole image in a
// supported format.
var ErrInvalid = errors.New("invalid image")

// Info is what the header of an image says about it.
type Info struct {
	Format      string // "jpeg", "png", "gif" or "webp"
	Width       int    // after EXIF orientation
	Height      int
	Orientation int // EXIF orientation 1–8; 1 when absent
}

// ContentType is the MIME type of the image's format.
func (i Info) ContentType() string { return "image/" + i.Format }

// Probe reads only the header: the format and the dimensions. It rejects an
// image of more than maxPixels before anything is decoded, which is what
// stops a decompression bomb (a tiny file claiming a huge canvas).
func Probe(r io.Reader, maxPixels int64) (Info, error) {
	// Buffer the header so the EXIF scan and DecodeConfig see the same bytes.
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(64 << 10)
	cfg, format, err := image.DecodeConfig(br)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Info{}, fmt.Errorf("%w: %dx%d", ErrInvalid, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return Info{}, fmt.Errorf("%w: %dx%d is more than %d pixels", ErrTooLarge, cfg.Width, cfg.Height, maxPixels)
	}
	info := Info{Format: format, Width: cfg.Width, Height: cfg.Height, Orientation: 1}
	if format == "jpeg" {
		info.Orientation = jpegOrientation(head)
		if info.Orientation >= 5 { // the four orientations that swap the axes
			info.Width, info.Height = info.Height, info.Width
		}
	}
	return info, nil
}

// Decode checks the header against maxPixels, decodes the whole image (so a
// truncated or corrupt file is an error, not a half-grey picture) and turns
// it upright according to its EXIF orientation.
func Decode(r io.ReadSeeker, maxPixels int64) (image.Image, Info, error) {
	info, err := Probe(r, maxPixels)
	if err != nil {
		return nil, Info{}, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, Info{}, fmt.Errorf("rewind: %w", err)
	}
	img, _, err := image.Decode(bufio.NewReaderSize(r, 64<<10))
	if err != nil {
		return nil, Info{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return orient(img, info.Orientation), info, nil
}

// DecodeBytes is Decode for an image already in memory.
func DecodeBytes(b []byte, maxPixels int64) (image.Image, Info, error) {
	return Decode(bytes.NewReader(b), maxPixels)
}
