package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/internal/blob"
	"github.com/kubelab/kubelab/services/imageproc/internal/store"
	"github.com/kubelab/kubelab/services/imageproc/pipeline"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// These tests watch the pipeline runs of a real ImageService (SQLite, a
// blob dir, gRPC on loopback) through its run field, which wraps
// pipeline.Run: when each starts, how it ends.

type runEvent struct {
	spec  string
	start bool  // else its end
	err   error // at the end
}

type watched struct {
	client imageprocv1.ImageServiceClient
	images *Images
	events chan runEvent
	runs   atomic.Int32
	// hold, if not nil, is waited for (or the run's context) before a run
	// starts the pipeline.
	hold chan struct{}
}

func serveWatched(t *testing.T, limits Limits, hold chan struct{}) *watched {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenSQLite(t.Context(), filepath.Join(dir, "meta.db"), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = blobs.Close() })
	w := &watched{events: make(chan runEvent, 1000), hold: hold}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w.images = &Images{deps: &deps{log: log, store: st, blobs: blobs, limits: limits},
		transforms: make(chan struct{}, limits.Transforms)}
	w.images.run = func(ctx context.Context, dst io.Writer, src io.ReadSeeker, spec pipeline.Spec, lim pipeline.Limits) (pipeline.Result, error) {
		w.runs.Add(1)
		w.events <- runEvent{spec: spec.String(), start: true}
		if w.hold != nil {
			select {
			case <-w.hold:
			case <-ctx.Done():
			}
		}
		res, err := pipeline.Run(ctx, dst, src, spec, lim)
		w.events <- runEvent{spec: spec.String(), err: err}
		return res, err
	}
	g := grpc.NewServer()
	imageprocv1.RegisterImageServiceServer(g, w.images)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	w.client = imageprocv1.NewImageServiceClient(conn)
	return w
}

func (w *watched) upload(t *testing.T, data []byte) string {
	t.Helper()
	s, err := w.client.Upload(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Metadata{Metadata: &imageprocv1.UploadMetadata{Filename: "p.jpg"}}})
	for chunk := range slices.Chunk(data, 32<<10) {
		_ = s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Chunk{Chunk: chunk}})
	}
	resp, err := s.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetImage().GetId()
}

// next is the next run event, within a generous bound.
func (w *watched) next(t *testing.T) runEvent {
	t.Helper()
	select {
	case e := <-w.events:
		return e
	case <-time.After(60 * time.Second):
		t.Fatal("no pipeline run started or ended within a minute")
		return runEvent{}
	}
}

func blurs(sigma float64, n int) []*imageprocv1.Operation {
	var ops []*imageprocv1.Operation
	for range n {
		ops = append(ops, &imageprocv1.Operation{Op: &imageprocv1.Operation_Blur{Blur: &imageprocv1.Blur{Sigma: sigma}}})
	}
	return ops
}

func thumbnail(size int32) []*imageprocv1.Operation {
	return []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Thumbnail{Thumbnail: &imageprocv1.Thumbnail{Size: size}}}}
}

// A client that gives up on a long transform gives its slot back at once:
// with one slot, a tiny thumbnail asked for next runs as soon as the
// abandoned render has stopped, which it does mid-way, not at its end.
func TestAbandonedTransformFreesItsSlot(t *testing.T) {
	w := serveWatched(t, Limits{MaxUploadBytes: 8 << 20, MaxPixels: 20_000_000, Transforms: 1}, nil)
	big := w.upload(t, pipelinetest.JPEG(1200, 800, 1))
	small := w.upload(t, pipelinetest.JPEG(64, 48, 2))

	// Three blurs of σ 20 on ~1 MP: within the work budget, and seconds of
	// a core (far more under the race detector).
	abandon, cancel := context.WithCancel(t.Context())
	abandoned := make(chan error, 1)
	go func() {
		_, err := w.client.Transform(abandon, &imageprocv1.TransformRequest{ImageId: big, Operations: blurs(20, 3)})
		abandoned <- err
	}()
	if e := w.next(t); !e.start {
		t.Fatalf("first event %+v, want the blur's start", e)
	}
	cancel()
	if err := <-abandoned; status.Code(err) != codes.Canceled {
		t.Fatalf("abandoned call: %v", err)
	}

	thumbDone := make(chan error, 1)
	go func() {
		ctx, done := context.WithTimeout(t.Context(), 2*time.Minute)
		defer done()
		_, err := w.client.Transform(ctx, &imageprocv1.TransformRequest{ImageId: small, Operations: thumbnail(32)})
		thumbDone <- err
	}()
	// With one slot, the order is fixed: the blur ends, then the
	// thumbnail starts. The blur must end stopped, not finished.
	if e := w.next(t); e.start || !errors.Is(e.err, context.Canceled) {
		t.Fatalf("the abandoned blur ended with %+v; want it stopped by its context", e)
	}
	if e := w.next(t); !e.start || e.spec != "thumbnail(32)|format(jpeg,85)" {
		t.Fatalf("next event %+v, want the thumbnail's start", e)
	}
	if err := <-thumbDone; err != nil {
		t.Fatalf("thumbnail after the abandoned blur: %v", err)
	}
}

// 200 identical requests for a variant that does not exist yet render it
// once, and all get it.
func TestIdenticalTransformsRenderOnce(t *testing.T) {
	w := serveWatched(t, Limits{MaxUploadBytes: 8 << 20, MaxPixels: 20_000_000, Transforms: 2}, make(chan struct{}))
	id := w.upload(t, pipelinetest.JPEG(800, 600, 3))
	const n = 200
	var wg sync.WaitGroup
	sums := make(chan string, n)
	for range n {
		wg.Go(func() {
			resp, err := w.client.Transform(t.Context(), &imageprocv1.TransformRequest{ImageId: id, Operations: thumbnail(300)})
			if err != nil {
				t.Error(err)
				return
			}
			sums <- resp.GetVariant().GetSha256()
		})
	}
	// Hold the render until all 200 wait for it: on a server that does
	// not coalesce, they would all be past their cache check by then.
	key := ""
	waitUntil(t, "200 callers waiting on one render", func() bool {
		w.images.renders.mu.Lock()
		defer w.images.renders.mu.Unlock()
		for k, f := range w.images.renders.calls {
			key = k
			return f.refs == n
		}
		return false
	})
	close(w.hold)
	wg.Wait()
	close(sums)
	first := ""
	for s := range sums {
		if first == "" {
			first = s
		}
		if s != first {
			t.Fatalf("callers got different variants: %s and %s", first, s)
		}
	}
	if runs := w.runs.Load(); runs != 1 {
		t.Fatalf("%d pipeline runs for %d identical transforms (key %s), want 1", runs, n, key)
	}
	// Later ones find it stored: still one run.
	resp, err := w.client.Transform(t.Context(), &imageprocv1.TransformRequest{ImageId: id, Operations: thumbnail(300)})
	if err != nil || !resp.GetCached() || w.runs.Load() != 1 {
		t.Fatalf("after: %v, %v, %d runs", resp, err, w.runs.Load())
	}
}
