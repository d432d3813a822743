package server_test

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/internal/server"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// bigJPEG returns a valid JPEG of about size bytes: a small photo with
// comment segments after its start marker. It probes, and is complete, like
// a camera file of that size, without seconds of encoding per run.
func bigJPEG(size int) []byte {
	small := pipelinetest.JPEG(640, 480, 1)
	out := append([]byte{}, small[:2]...)
	comment := make([]byte, 65533)
	for len(out)+len(small)+65537 <= size {
		out = append(out, 0xFF, 0xFE, 0xFF, 0xFF) // COM, length 65535
		out = append(out, comment...)
	}
	return append(out, small[2:]...)
}

// peakRSS reads the process's peak resident set size (VmHWM) in bytes;
// resetPeakRSS starts a new measurement. Linux only.
func peakRSS(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// BenchmarkStream20MB uploads and downloads a 20 MB photo through the real
// gRPC server over loopback TCP, in 64 KiB chunks. Server and client share
// the process, so bytes/op and the peak RSS growth cover both ends.
func BenchmarkStream20MB(b *testing.B) {
	// The photo lives in a file, as it would on a client's disk, so the
	// process's live heap (and so the GC's target) is the streams' alone.
	path := b.TempDir() + "/big.jpg"
	size := 20 << 20
	photo := bigJPEG(size)
	size = len(photo)
	if err := os.WriteFile(path, photo, 0o600); err != nil {
		b.Fatal(err)
	}
	e := start(b, server.Limits{MaxUploadBytes: 64 << 20, MaxPixels: 50_000_000})
	ctx := context.Background()
	var id string

	b.Run("upload", func(b *testing.B) {
		runtime.GC()
		resetPeakRSS()
		before := peakRSS(b)
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			img, err := e.uploadFrom(ctx, "big.jpg", f)
			_ = f.Close()
			if err != nil {
				b.Fatal(err)
			}
			id = img.GetId()
		}
		b.ReportMetric(float64(peakRSS(b)-before)/(1<<20), "peak-rss-growth-MB")
	})
	b.Run("download", func(b *testing.B) {
		runtime.GC()
		resetPeakRSS()
		before := peakRSS(b)
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			stream, err := e.images.Download(ctx, &imageprocv1.DownloadRequest{ImageId: id})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for {
				m, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n += len(m.GetChunk())
			}
			if n != size {
				b.Fatalf("downloaded %d bytes", n)
			}
		}
		b.ReportMetric(float64(peakRSS(b)-before)/(1<<20), "peak-rss-growth-MB")
	})
}
