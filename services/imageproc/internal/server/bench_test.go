package server_test

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"testing"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/internal/server"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

func peakRSS(b *testing.B) int64 {
	n, err := proctest.PeakRSS(os.Getpid())
	if err != nil {
		b.Skip(err)
	}
	return n
}

func resetPeakRSS() { _ = proctest.ResetPeakRSS(os.Getpid()) }

// BenchmarkStream20MB uploads and downloads a 20 MB photo through the real
// gRPC server over loopback TCP, in 64 KiB chunks. Server and client share
// the process, so bytes/op and the peak RSS growth cover both ends.
func BenchmarkStream20MB(b *testing.B) {
	// The photo lives in a file, as it would on a client's disk, so the
	// process's live heap (and so the GC's target) is the streams' alone.
	path := b.TempDir() + "/big.jpg"
	size := 20 << 20
	photo := pipelinetest.LargeJPEG(size)
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
