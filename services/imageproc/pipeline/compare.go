package pipeline

import (
	"image"
	"math"
)

// MeanAbsDiff is the mean absolute difference of the RGB channels of two
// images of the same size, in levels (0–255). Benchmarks and tests use it to
// show two resizers agree; it is +Inf for images of different sizes.
func MeanAbsDiff(a, b image.Image) float64 {
	ra, rb := toRGBA(a), toRGBA(b)
	if ra.Rect.Size() != rb.Rect.Size() {
		return math.Inf(1)
	}
	var sum float64
	w, h := ra.Rect.Dx(), ra.Rect.Dy()
	for y := range h {
		pa, pb := ra.Pix[y*ra.Stride:][:4*w], rb.Pix[y*rb.Stride:][:4*w]
		for x := 0; x < 4*w; x += 4 {
			for c := range 3 {
				sum += math.Abs(float64(pa[x+c]) - float64(pb[x+c]))
			}
		}
	}
	return sum / float64(3*w*h)
}
