package stats

import (
	"math/bits"
	"time"
)

// Histogram records latencies in log-linear buckets: each power of two is
// split into 16, so any percentile is within about 6% of the true value,
// in constant memory however long loadgen runs.
type Histogram struct {
	counts [64 * subBuckets]uint64
	total  uint64
	max    time.Duration
}

const subBits = 4
const subBuckets = 1 << subBits

func bucketOf(d time.Duration) int {
	v := uint64(max(d.Microseconds(), 0))
	if v < subBuckets {
		return int(v)
	}
	exp := bits.Len64(v) - 1 - subBits // how far v is shifted to fit 4 bits
	return (exp+1)*subBuckets + int(v>>uint(exp)) - subBuckets
}

// upper is the largest latency that falls in bucket i.
func upper(i int) time.Duration {
	if i < subBuckets {
		return time.Duration(i) * time.Microsecond
	}
	exp := i/subBuckets - 1
	mant := uint64(i%subBuckets + subBuckets)
	return time.Duration((mant+1)<<uint(exp)-1) * time.Microsecond
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.total++
	h.max = max(h.max, d)
}

// Count is how many latencies were recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest latency recorded.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the latency below which fraction q of the recorded
// ones fall (0 when empty).
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return min(upper(i), h.max)
		}
	}
	return h.max
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}
