package stream

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/kubelab/kubelab/services/clusterview/internal/view"
)

// BenchmarkFiftyViews: one snapshot change sent to 50 open live views over
// loopback HTTP, the figure for a classroom. An op is one Publish
// until every browser has read it; heap-B/view is what each open view
// holds. A snapshot of kubelab's namespace mid-rollout is about 6 KB.
func BenchmarkFiftyViews(b *testing.B) {
	const views = 50
	hub := view.NewHub(views)
	srv := httptest.NewServer(Handler(hub))
	defer srv.Close()
	snapshot := func(n int) []byte {
		return fmt.Appendf(nil, `{"namespace":"kubelab","n":%d,"pad":%q}`, n, strings.Repeat("x", 6000))
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	got := make(chan int, views)
	for range views {
		resp, err := http.Get(srv.URL) //nolint:bodyclose // closed by the defer below
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		go func() {
			r := bufio.NewReaderSize(resp.Body, 16<<10)
			for {
				line, err := r.ReadBytes('\n')
				if err != nil {
					return
				}
				if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
					var n int
					_, _ = fmt.Sscanf(string(data), `{"namespace":"kubelab","n":%d`, &n)
					got <- n
				}
			}
		}()
	}
	for hub.Watching() < views {
		runtime.Gosched()
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		hub.Publish(snapshot(i + 1))
		for seen := 0; seen < views; {
			if <-got == i+1 {
				seen++
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/views, "heap-B/view")
}
