package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"

	// Decoders for the formats an upload may be in.
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/webp"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/jpegscale"
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

	decoding decoding // what decoding it will allocate
	// scalable is what jpegscale makes of a JPEG's header; nil when it
	// cannot decode the file, which image/jpeg then decodes at full size.
	scalable *jpegscale.Config
}

// ContentType is the MIME type of the image's format.
func (i Info) ContentType() string { return "image/" + i.Format }

// Probe reads only the header: the format and the dimensions. It rejects an
// image of more than maxPixels before anything is decoded, which is what
// stops a decompression bomb (a tiny file claiming a huge canvas).
func Probe(r io.Reader, maxPixels int64) (Info, error) {
	// Keep what DecodeConfig reads (for a JPEG, every segment up to the
	// first scan), so the EXIF and frame header scans see the same bytes.
	rec := &recorder{r: r, max: maxHeader}
	cfg, format, err := image.DecodeConfig(bufio.NewReaderSize(rec, 64<<10))
	head := rec.buf
	if err != nil {
		return Info{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Info{}, fmt.Errorf("%w: %dx%d", ErrInvalid, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return Info{}, fmt.Errorf("%w: %dx%d is more than %d pixels", ErrTooLarge, cfg.Width, cfg.Height, maxPixels)
	}
	info := Info{Format: format, Width: cfg.Width, Height: cfg.Height, Orientation: 1,
		decoding: decodingOf(format, cfg.ColorModel, cfg.Width, cfg.Height, head)}
	if format == "jpeg" {
		info.Orientation = jpegOrientation(head)
		if info.Orientation >= 5 { // the four orientations that swap the axes
			info.Width, info.Height = info.Height, info.Width
		}
		if cfg, err := jpegscale.DecodeConfig(bytes.NewReader(head)); err == nil {
			info.scalable = &cfg
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
	img, err := decodeProbed(context.Background(), r, info, 1)
	if err != nil {
		return nil, Info{}, err
	}
	return img, info, nil
}

// DecodeBytes is Decode for an image already in memory.
func DecodeBytes(b []byte, maxPixels int64) (image.Image, Info, error) {
	return Decode(bytes.NewReader(b), maxPixels)
}

// decodeProbed decodes r from its start, as Probe described it, at
// 1/denom of its size (a JPEG jpegscale decodes; denom is 1 for anything
// else). At full size the standard decoders do it, so that images come out
// exactly as they always have. The decoders take no context, so they read
// through one: when ctx ends, their next read fails and so does the
// decode. An error wrapping jpegscale.ErrUnsupported means: decode it at
// full size instead.
func decodeProbed(ctx context.Context, r io.ReadSeeker, info Info, denom int) (image.Image, error) {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind: %w", err)
	}
	var img image.Image
	var err error
	if denom > 1 {
		img, err = jpegscale.Decode(&ctxReader{ctx: ctx, r: r}, denom)
		if errors.Is(err, jpegscale.ErrUnsupported) && ctx.Err() == nil {
			return nil, err
		}
	} else {
		img, _, err = image.Decode(bufio.NewReaderSize(&ctxReader{ctx: ctx, r: r}, 64<<10))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return orient(img, info.Orientation), nil
}

// maxHeader bounds the header bytes Probe keeps: JPEG segments before the
// first scan (EXIF, ICC profiles, thumbnails) rarely pass a few hundred KB.
const maxHeader = 1 << 20

// recorder keeps the first max bytes read through it.
type recorder struct {
	r   io.Reader
	buf []byte
	max int
}

func (rec *recorder) Read(p []byte) (int, error) {
	n, err := rec.r.Read(p)
	if room := rec.max - len(rec.buf); room > 0 {
		rec.buf = append(rec.buf, p[:min(n, room)]...)
	}
	return n, err
}

// ctxReader fails its reads once ctx has ended. Reads are kept small so a
// decoder looks at the context often: 8 KiB of a PNG can inflate to
// megabytes of pixels.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	err error // once failed, always failed: bufio forgets an error once returned
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if c.err == nil {
		c.err = stopped(c.ctx)
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.r.Read(p[:min(len(p), 8<<10)])
}
