package web

import (
	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
)

// A preset is a named transform the pages offer; the API takes any
// operations. Presets keep the forms to one select, with no parsing.
type preset struct {
	Name, Label string
	ops         []*imageprocv1.Operation
	output      *imageprocv1.Output
}

func thumb(size int32) *imageprocv1.Operation {
	return &imageprocv1.Operation{Op: &imageprocv1.Operation_Thumbnail{Thumbnail: &imageprocv1.Thumbnail{Size: size}}}
}

var (
	jpeg = &imageprocv1.Output{Format: imageprocv1.Format_FORMAT_JPEG}
	png  = &imageprocv1.Output{Format: imageprocv1.Format_FORMAT_PNG}
)

var presets = []preset{
	{Name: "thumbnail", Label: "Thumbnail, 256 px", ops: []*imageprocv1.Operation{thumb(256)}, output: jpeg},
	{Name: "grayscale", Label: "Black and white, 1024 px", ops: []*imageprocv1.Operation{
		fit(1024), {Op: &imageprocv1.Operation_Grayscale{Grayscale: &imageprocv1.Grayscale{}}}}, output: jpeg},
	{Name: "square", Label: "Square crop, 512 px", ops: []*imageprocv1.Operation{
		{Op: &imageprocv1.Operation_Resize{Resize: &imageprocv1.Resize{Width: 512, Height: 512, Mode: imageprocv1.ResizeMode_RESIZE_MODE_FILL}}}}, output: jpeg},
	{Name: "rotate", Label: "Rotate 90°, 1024 px", ops: []*imageprocv1.Operation{
		fit(1024), {Op: &imageprocv1.Operation_Rotate{Rotate: &imageprocv1.Rotate{Degrees: 90}}}}, output: jpeg},
	{Name: "mirror", Label: "Mirror, 1024 px", ops: []*imageprocv1.Operation{
		fit(1024), {Op: &imageprocv1.Operation_Flip{Flip: &imageprocv1.Flip{Direction: imageprocv1.FlipDirection_FLIP_DIRECTION_HORIZONTAL}}}}, output: jpeg},
	{Name: "soft", Label: "Soft focus, 1024 px", ops: []*imageprocv1.Operation{
		fit(1024), {Op: &imageprocv1.Operation_Blur{Blur: &imageprocv1.Blur{Sigma: 3}}}}, output: jpeg},
	{Name: "crisp", Label: "Sharpened PNG, 800 px", ops: []*imageprocv1.Operation{
		fit(800), {Op: &imageprocv1.Operation_Sharpen{Sharpen: &imageprocv1.Sharpen{Sigma: 1, Amount: 1}}}}, output: png},
}

func fit(size int32) *imageprocv1.Operation {
	return &imageprocv1.Operation{Op: &imageprocv1.Operation_Resize{Resize: &imageprocv1.Resize{Width: size, Height: size, Mode: imageprocv1.ResizeMode_RESIZE_MODE_FIT}}}
}

func findPreset(name string) (preset, bool) {
	for _, p := range presets {
		if p.Name == name {
			return p, true
		}
	}
	return preset{}, false
}

// Renditions are the sizes the pages show: made on first view by
// Transform, then served from imageproc's stored variant.
var renditions = map[string]preset{
	"thumbnail": {ops: []*imageprocv1.Operation{thumb(256)}, output: jpeg},
	"preview":   {ops: []*imageprocv1.Operation{fit(1024)}, output: jpeg},
}
