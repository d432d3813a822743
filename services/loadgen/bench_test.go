package main

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/loadgen/internal/load"
	"github.com/kubelab/kubelab/services/loadgen/internal/stats"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

// BenchmarkFrontendInfo measures the real frontend binary's GET
// /api/v1/info at concurrency 32, the frontend pinned to CPU 0 with
// GOMAXPROCS=1 and this load (run by `make bench` under taskset -c 1) on
// the other core, so the two never share one.
func BenchmarkFrontendInfo(b *testing.B) {
	bin := proctest.Build(b, "github.com/kubelab/kubelab/services/frontend")
	addr := proctest.FreeAddr(b)
	proctest.Start(b, "frontend", "taskset", []string{"-c", "0", bin}, "GOMAXPROCS=1", "HTTP_ADDR="+addr,
		"METRICS_ADDR=", "IMAGEPROC_ADDR=127.0.0.1:1", "IMAGEPROC_BALANCING=pick_first", "LOG_LEVEL=warn")
	url := "http://" + addr + "/api/v1/info"
	proctest.WaitFor(b, "frontend", 10*time.Second, func() bool { return proctest.Status(url) == http.StatusOK })

	const concurrency = 32
	target := load.NewHTTP(url, "", concurrency, true)
	defer target.Close()
	var (
		mu     sync.Mutex
		hist   stats.Histogram
		failed atomic.Int64
		next   atomic.Int64
	)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			var local stats.Histogram
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				o := target.Hit(context.Background())
				local.Record(time.Since(t0))
				if o.Failure != "" {
					failed.Add(1)
				}
			}
			mu.Lock()
			hist.Merge(&local)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed.Load() > 0 {
		b.Fatalf("%d requests failed", failed.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(hist.Quantile(0.99).Microseconds())/1000, "p99-ms")
}
