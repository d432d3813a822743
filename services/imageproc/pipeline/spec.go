// Package pipeline turns photos into variants: decode with limits, apply
// operations, encode. imageproc runs it for synchronous transforms and the
// worker runs the same code for batch jobs, so a variant is the same bytes
// whoever made it.
//
// A Spec is a list of operations plus an output encoding. Its canonical
// string form (String) is the variant's key: the same spec always prints the
// same way, so asking for the same variant twice finds the first one.
package pipeline

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Format is an output encoding.
type Format string

const (
	JPEG Format = "jpeg"
	PNG  Format = "png"
)

// ContentType is the MIME type of f.
func (f Format) ContentType() string { return "image/" + string(f) }

// DefaultQuality is the JPEG quality when a spec does not say.
const DefaultQuality = 85

// MaxDimension bounds every width and height an operation may ask for.
const MaxDimension = 10000

// Op is one operation. The set is closed: the types in this file.
type Op interface {
	// canonical is the op's form in a spec string, e.g. "thumbnail(256)".
	canonical() string
	validate() error
}

// ResizeMode says how Resize treats the aspect ratio.
type ResizeMode string

const (
	Fit  ResizeMode = "fit"  // inside Width x Height, ratio kept
	Fill ResizeMode = "fill" // exactly Width x Height, overflow cropped from the centre
)

type (
	// Resize scales to Width x Height; one may be 0 to keep the ratio.
	Resize struct {
		Width, Height int
		Mode          ResizeMode
	}
	// Thumbnail fits inside Size x Size and never enlarges.
	Thumbnail struct{ Size int }
	// Crop keeps the rectangle at X, Y of Width x Height.
	Crop struct{ X, Y, Width, Height int }
	// Rotate turns clockwise by 90, 180 or 270 degrees.
	Rotate struct{ Degrees int }
	// Flip mirrors: Horizontal swaps left and right, otherwise top and bottom.
	Flip struct{ Horizontal bool }
	// Grayscale removes colour.
	Grayscale struct{}
	// Blur is a Gaussian blur of standard deviation Sigma pixels.
	Blur struct{ Sigma float64 }
	// Sharpen is an unsharp mask.
	Sharpen struct{ Sigma, Amount float64 }
)

func ff(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func (o Resize) canonical() string {
	return fmt.Sprintf("resize(%d,%d,%s)", o.Width, o.Height, o.Mode)
}
func (o Thumbnail) canonical() string { return fmt.Sprintf("thumbnail(%d)", o.Size) }
func (o Crop) canonical() string {
	return fmt.Sprintf("crop(%d,%d,%d,%d)", o.X, o.Y, o.Width, o.Height)
}
func (o Rotate) canonical() string { return fmt.Sprintf("rotate(%d)", o.Degrees) }
func (o Flip) canonical() string {
	if o.Horizontal {
		return "flip(h)"
	}
	return "flip(v)"
}
func (Grayscale) canonical() string { return "grayscale" }
func (o Blur) canonical() string    { return "blur(" + ff(o.Sigma) + ")" }
func (o Sharpen) canonical() string { return "sharpen(" + ff(o.Sigma) + "," + ff(o.Amount) + ")" }

func dim(name string, v int, zeroOK bool) error {
	if (v == 0 && zeroOK) || (v > 0 && v <= MaxDimension) {
		return nil
	}
	return fmt.Errorf("%s must be 1..%d, got %d", name, MaxDimension, v)
}

func (o Resize) validate() error {
	if o.Mode != Fit && o.Mode != Fill {
		return fmt.Errorf("resize mode must be fit or fill, got %q", o.Mode)
	}
	if err := dim("resize width", o.Width, o.Mode == Fit); err != nil {
		return err
	}
	if err := dim("resize height", o.Height, o.Mode == Fit); err != nil {
		return err
	}
	if o.Width == 0 && o.Height == 0 {
		return errors.New("resize needs a width or a height")
	}
	return nil
}
func (o Thumbnail) validate() error { return dim("thumbnail size", o.Size, false) }
func (o Crop) validate() error {
	if o.X < 0 || o.Y < 0 || o.X > MaxDimension || o.Y > MaxDimension {
		return fmt.Errorf("crop origin must be 0..%d, got (%d,%d)", MaxDimension, o.X, o.Y)
	}
	if err := dim("crop width", o.Width, false); err != nil {
		return err
	}
	return dim("crop height", o.Height, false)
}
func (o Rotate) validate() error {
	if o.Degrees != 90 && o.Degrees != 180 && o.Degrees != 270 {
		return fmt.Errorf("rotate degrees must be 90, 180 or 270, got %d", o.Degrees)
	}
	return nil
}
func (Flip) validate() error      { return nil }
func (Grayscale) validate() error { return nil }
func (o Blur) validate() error {
	if !(o.Sigma > 0 && o.Sigma <= 50) {
		return fmt.Errorf("blur sigma must be in (0, 50], got %s", ff(o.Sigma))
	}
	return nil
}
func (o Sharpen) validate() error {
	if !(o.Sigma > 0 && o.Sigma <= 50) {
		return fmt.Errorf("sharpen sigma must be in (0, 50], got %s", ff(o.Sigma))
	}
	if !(o.Amount > 0 && o.Amount <= 10) {
		return fmt.Errorf("sharpen amount must be in (0, 10], got %s", ff(o.Amount))
	}
	return nil
}

// MaxOps bounds the length of a spec.
const MaxOps = 16

// Spec is what makes a variant: operations in order, then an encoding.
type Spec struct {
	Ops     []Op
	Format  Format
	Quality int // JPEG only; 0 means DefaultQuality
}

// Normalize fills defaults, so equal requests get equal canonical strings.
func (s Spec) Normalize() Spec {
	if s.Format == "" {
		s.Format = JPEG
	}
	if s.Format == JPEG && s.Quality == 0 {
		s.Quality = DefaultQuality
	}
	if s.Format == PNG {
		s.Quality = 0
	}
	return s
}

// Validate reports the first problem with a normalized spec, naming the
// operation by its position.
func (s Spec) Validate() error {
	if len(s.Ops) == 0 {
		return errors.New("operations: at least one is needed")
	}
	if len(s.Ops) > MaxOps {
		return fmt.Errorf("operations: at most %d, got %d", MaxOps, len(s.Ops))
	}
	for i, op := range s.Ops {
		if op == nil {
			return fmt.Errorf("operations[%d]: empty", i)
		}
		if err := op.validate(); err != nil {
			return fmt.Errorf("operations[%d]: %w", i, err)
		}
	}
	switch s.Format {
	case JPEG:
		if s.Quality < 1 || s.Quality > 100 {
			return fmt.Errorf("output quality must be 1..100, got %d", s.Quality)
		}
	case PNG:
	default:
		return fmt.Errorf("output format must be jpeg or png, got %q", s.Format)
	}
	return nil
}

// String is the canonical form, e.g. "thumbnail(256)|grayscale|format(jpeg,85)".
func (s Spec) String() string {
	var b strings.Builder
	for _, op := range s.Ops {
		b.WriteString(op.canonical())
		b.WriteByte('|')
	}
	if s.Format == JPEG {
		fmt.Fprintf(&b, "format(jpeg,%d)", s.Quality)
	} else {
		fmt.Fprintf(&b, "format(%s)", s.Format)
	}
	return b.String()
}

// ParseSpec reads a canonical spec string. Only the canonical form is
// accepted, so one variant can never hide under two keys.
func ParseSpec(text string) (Spec, error) {
	parts := strings.Split(text, "|")
	if len(parts) < 2 {
		return Spec{}, fmt.Errorf("spec %q: want operations then format(...), separated by |", text)
	}
	var s Spec
	for _, p := range parts[:len(parts)-1] {
		op, err := parseOp(p)
		if err != nil {
			return Spec{}, fmt.Errorf("spec %q: %w", text, err)
		}
		s.Ops = append(s.Ops, op)
	}
	name, args, err := call(parts[len(parts)-1])
	if err != nil || name != "format" || len(args) == 0 || len(args) > 2 {
		return Spec{}, fmt.Errorf("spec %q: must end with format(jpeg,Q) or format(png)", text)
	}
	s.Format = Format(args[0])
	if len(args) == 2 {
		if s.Quality, err = strconv.Atoi(args[1]); err != nil {
			return Spec{}, fmt.Errorf("spec %q: quality: %w", text, err)
		}
	}
	if err := s.Validate(); err != nil {
		return Spec{}, fmt.Errorf("spec %q: %w", text, err)
	}
	if canon := s.String(); canon != text {
		return Spec{}, fmt.Errorf("spec %q is not canonical; did you mean %q", text, canon)
	}
	return s, nil
}

func call(s string) (name string, args []string, err error) {
	open := strings.IndexByte(s, '(')
	if open < 0 {
		return s, nil, nil
	}
	if !strings.HasSuffix(s, ")") {
		return "", nil, fmt.Errorf("%q: missing )", s)
	}
	return s[:open], strings.Split(s[open+1:len(s)-1], ","), nil
}

func parseOp(s string) (Op, error) {
	name, args, err := call(s)
	if err != nil {
		return nil, err
	}
	ints := func(n int) ([]int, error) {
		if len(args) != n {
			return nil, fmt.Errorf("%s takes %d arguments", name, n)
		}
		out := make([]int, n)
		for i, a := range args {
			if out[i], err = strconv.Atoi(a); err != nil {
				return nil, fmt.Errorf("%s argument %d: %w", name, i+1, err)
			}
		}
		return out, nil
	}
	floats := func(n int) ([]float64, error) {
		if len(args) != n {
			return nil, fmt.Errorf("%s takes %d arguments", name, n)
		}
		out := make([]float64, n)
		for i, a := range args {
			if out[i], err = strconv.ParseFloat(a, 64); err != nil {
				return nil, fmt.Errorf("%s argument %d: %w", name, i+1, err)
			}
		}
		return out, nil
	}
	switch name {
	case "resize":
		if len(args) != 3 {
			return nil, errors.New("resize takes width,height,mode")
		}
		mode := ResizeMode(args[2])
		args = args[:2]
		v, err := ints(2)
		if err != nil {
			return nil, err
		}
		return Resize{Width: v[0], Height: v[1], Mode: mode}, nil
	case "thumbnail":
		v, err := ints(1)
		if err != nil {
			return nil, err
		}
		return Thumbnail{Size: v[0]}, nil
	case "crop":
		v, err := ints(4)
		if err != nil {
			return nil, err
		}
		return Crop{X: v[0], Y: v[1], Width: v[2], Height: v[3]}, nil
	case "rotate":
		v, err := ints(1)
		if err != nil {
			return nil, err
		}
		return Rotate{Degrees: v[0]}, nil
	case "flip":
		if len(args) != 1 || (args[0] != "h" && args[0] != "v") {
			return nil, errors.New("flip takes h or v")
		}
		return Flip{Horizontal: args[0] == "h"}, nil
	case "grayscale":
		if args != nil {
			return nil, errors.New("grayscale takes no arguments")
		}
		return Grayscale{}, nil
	case "blur":
		v, err := floats(1)
		if err != nil {
			return nil, err
		}
		return Blur{Sigma: v[0]}, nil
	case "sharpen":
		v, err := floats(2)
		if err != nil {
			return nil, err
		}
		return Sharpen{Sigma: v[0], Amount: v[1]}, nil
	}
	return nil, fmt.Errorf("unknown operation %q", name)
}
