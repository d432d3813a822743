package work_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/imageproctest"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
	"github.com/kubelab/kubelab/services/worker/internal/work"
)

// oneTaskBatch uploads a photo to srv and queues a batch of one thumbnail
// task for it; it returns the queue's client and the batch's ID.
func oneTaskBatch(t *testing.T, srv *imageproctest.Server) (imageprocv1.QueueServiceClient, string) {
	t.Helper()
	images, queue := srv.Clients(t)
	img, err := imageproctest.Upload(t.Context(), images, "p.jpg", pipelinetest.JPEG(320, 240, 1))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := queue.SubmitBatch(t.Context(), &imageprocv1.SubmitBatchRequest{ImageIds: []string{img.GetId()}, Operations: thumbOps})
	if err != nil {
		t.Fatal(err)
	}
	return queue, batch.GetBatch().GetId()
}

// A worker whose lease renewals stop getting through must stop its task
// once the lease has run out, as when imageproc says the lease is lost: by
// then another worker may have claimed the task. It uploads nothing and
// completes nothing. The real imageproc; between them, a network that lets
// no RenewLease through and a download slower than the lease.
func TestTaskStopsWhenItsLeaseRunsOut(t *testing.T) {
	const lease = time.Second
	// MAX_ATTEMPTS=1: once the lease has expired the task is failed, and
	// the worker finds nothing more to do.
	srv := imageproctest.Start(t, "imageproc", "", "MAX_ATTEMPTS=1", "LOG_LEVEL=warn")
	queue, batch := oneTaskBatch(t, srv)

	var uploads, completions atomic.Int32
	download := make(chan string, 1)
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			switch method {
			case imageprocv1.QueueService_RenewLease_FullMethodName:
				return status.Error(codes.Unavailable, "test: no renewal gets through")
			case imageprocv1.QueueService_CompleteTask_FullMethodName:
				completions.Add(1)
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			switch method {
			case imageprocv1.ImageService_Download_FullMethodName:
				// Slower than the lease: it ends when the task is stopped,
				// or, for a worker that never stops it, after ten leases.
				select {
				case <-ctx.Done():
					download <- "stopped"
					return nil, status.FromContextError(ctx.Err()).Err()
				case <-time.After(10 * lease):
					download <- "went on after the lease ran out"
				}
			case imageprocv1.ImageService_UploadVariant_FullMethodName:
				uploads.Add(1)
			}
			return streamer(ctx, desc, cc, method, opts...)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	w := work.New(work.Config{Name: "w", Concurrency: 1, Batch: 1, Lease: lease, MaxPixels: 50e6,
		Wait: 10 * time.Second, Finish: time.Second, Poll: 50 * time.Millisecond},
		imageprocv1.NewImageServiceClient(conn), imageprocv1.NewQueueServiceClient(conn), slog.New(slog.DiscardHandler), nil)
	if err := w.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := <-download; got != "stopped" {
		t.Fatalf("the download %s", got)
	}
	if n := uploads.Load(); n != 0 {
		t.Fatalf("%d variants uploaded by a worker that had lost its lease", n)
	}
	if n := completions.Load(); n != 0 {
		t.Fatalf("%d completions tried by a worker that had lost its lease", n)
	}
	if s := w.Stats(); s.Lost != 1 || s.Done != 0 {
		t.Fatalf("stats %+v, want the task lost", s)
	}
	b, err := queue.GetBatch(t.Context(), &imageprocv1.GetBatchRequest{Id: batch})
	if err != nil || b.GetBatch().GetFailed() != 1 {
		t.Fatalf("batch %v, %v; want the task failed by its expired lease", b, err)
	}
}

// A stop that arrives while a claim is on the wire must not strand what
// the claim leased: imageproc has committed it, and if the worker dropped
// the answer, those tasks would wait out their lease (a minute here) before
// another pod could take them. The real imageproc; between them, a client
// that stops the worker after imageproc answered the claim and, as gRPC
// does, fails the call if the caller's context ended before the answer
// was read.
func TestStopDuringClaimReleasesWhatItClaimed(t *testing.T) {
	srv := imageproctest.Start(t, "imageproc", "", "LOG_LEVEL=warn")
	queue, batch := oneTaskBatch(t, srv)

	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(func(callCtx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if method != imageprocv1.QueueService_ClaimTasks_FullMethodName {
				return invoker(callCtx, method, req, reply, cc, opts...)
			}
			err := invoker(context.WithoutCancel(callCtx), method, req, reply, cc, opts...)
			stop() // SIGTERM, just as imageproc's answer is on its way
			if callCtx.Err() != nil {
				return status.FromContextError(callCtx.Err()).Err()
			}
			return err
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	w := work.New(work.Config{Name: "w", Concurrency: 1, Batch: 1, Lease: time.Minute, MaxPixels: 50e6,
		Wait: 10 * time.Second, Finish: time.Second, Poll: 50 * time.Millisecond},
		imageprocv1.NewImageServiceClient(conn), imageprocv1.NewQueueServiceClient(conn), slog.New(slog.DiscardHandler), nil)
	if err := w.Run(ctx); !errors.Is(err, work.ErrStopped) {
		t.Fatalf("run: %v, want ErrStopped", err)
	}
	b, err := queue.GetBatch(t.Context(), &imageprocv1.GetBatchRequest{Id: batch})
	if err != nil || b.GetBatch().GetLeased() != 0 || b.GetBatch().GetPending() != 1 {
		t.Fatalf("batch after the stop: %v, %v; want its task pending again, not leased for a minute", b, err)
	}
}
