package stats

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueInOrder(t *testing.T) {
	prev := -1
	for v := time.Duration(0); v < 10*time.Second; v = v*9/8 + time.Microsecond {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucket of %v is %d, below the previous %d", v, b, prev)
		}
		if up := upper(b); up < v.Truncate(time.Microsecond) {
			t.Fatalf("%v lands in bucket %d whose upper bound is %v", v, b, up)
		}
		prev = b
	}
}

func TestQuantilesWithinSixPercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var all []time.Duration
	for range 100000 {
		d := time.Duration(rng.ExpFloat64() * float64(3*time.Millisecond))
		h.Record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.Quantile(q)
		if diff := float64(got-exact) / float64(exact); diff < -0.07 || diff > 0.07 {
			t.Errorf("p%v = %v, exact %v (%.1f%% off)", q*100, got, exact, diff*100)
		}
	}
	if h.Max() != all[len(all)-1] || h.Count() != 100000 {
		t.Errorf("max %v count %d", h.Max(), h.Count())
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 {
		t.Error("empty histogram has a p99")
	}
}

func TestMerge(t *testing.T) {
	var a, b Histogram
	a.Record(time.Millisecond)
	b.Record(100 * time.Millisecond)
	b.Record(100 * time.Millisecond)
	a.Merge(&b)
	if a.Count() != 3 || a.Max() != 100*time.Millisecond || a.Quantile(0.5) < 90*time.Millisecond {
		t.Fatalf("merged: count %d max %v p50 %v", a.Count(), a.Max(), a.Quantile(0.5))
	}
}
