package main_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// An upload over a slow link outlives MAX_CONNECTION_AGE. The age limit
// must only move new calls to a new connection, never cut the calls already
// running on the old one: the grace after it has to cover the longest call
// a client makes (the frontend allows 2-minute streams). With the grace it
// replaced (30s), this upload failed with Unavailable at age + 30s.
func TestProcessUploadOutlivesConnectionAge(t *testing.T) {
	t.Parallel() // most of its time is spent waiting on the slow link
	const (
		age = time.Second
		// Longer than the age plus its 10% jitter plus the old 30s grace.
		linkTime = 33 * time.Second
		pieces   = 66
	)
	p := startProc(t, "MAX_CONNECTION_AGE="+age.String())

	var dials atomic.Int32
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := imageprocv1.NewImageServiceClient(conn)

	// The frontend's deadline for streams, IMAGEPROC_STREAM_TIMEOUT.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	photo := pipelinetest.JPEG(1200, 900, 11)
	s, err := c.Upload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Metadata{Metadata: &imageprocv1.UploadMetadata{Filename: "slow-link.jpg"}}}); err != nil {
		t.Fatal(err)
	}
	size := (len(photo) + pieces - 1) / pieces
	for off := 0; off < len(photo); off += size {
		time.Sleep(linkTime / pieces)
		// A short call beside the upload: it goes out on a connection
		// opened after the last one aged, so the dial count shows the age
		// limit really struck while the upload ran.
		if _, err := c.ListImages(ctx, &imageprocv1.ListImagesRequest{PageSize: 1}); err != nil {
			t.Fatalf("ListImages beside the upload: %v", err)
		}
		// A Send error means the stream is gone; CloseAndRecv says why.
		if err := s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Chunk{Chunk: photo[off:min(off+size, len(photo))]}}); err != nil {
			break
		}
	}
	resp, err := s.CloseAndRecv()
	if err != nil {
		t.Fatalf("upload over a %v link, connection age %v: %v", linkTime, age, err)
	}
	if resp.GetImage().GetSizeBytes() != int64(len(photo)) {
		t.Fatalf("stored %d bytes, sent %d", resp.GetImage().GetSizeBytes(), len(photo))
	}
	if n := dials.Load(); n < 3 {
		t.Fatalf("%d connections during the upload; the age limit never struck, so this proved nothing", n)
	}
}
