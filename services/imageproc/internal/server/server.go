// Package server implements imageproc.v1 over gRPC: the ImageService and
// the QueueService, on top of a store.Store and a blob.Store.
package server

import (
	"context"
	"log/slog"
	"runtime"

	"google.golang.org/grpc"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/internal/blob"
	"github.com/kubelab/kubelab/services/imageproc/internal/store"
)

// Limits bound what one request may cost.
type Limits struct {
	MaxUploadBytes int64 // bytes of one upload or variant
	MaxPixels      int64 // width × height of any image decoded or produced
	// Transforms is how many transforms may run at once; further ones wait.
	// Zero means one per CPU: transforms are CPU-bound.
	Transforms int
	// MemoryLimit is the container's memory limit in bytes, which the
	// transforms running at once share (pipeline.MemoryBudget); zero means
	// none is known, and only MaxPixels bounds a transform's memory.
	MemoryLimit int64
}

// chunkSize is the size of download messages: big enough to amortise
// per-message cost, small enough to keep memory flat.
const chunkSize = 64 << 10

type deps struct {
	log    *slog.Logger
	store  store.Store
	blobs  blob.Store
	limits Limits
}

// Register adds both services to g.
func Register(g *grpc.Server, log *slog.Logger, st store.Store, blobs blob.Store, limits Limits) {
	if limits.Transforms <= 0 {
		limits.Transforms = runtime.GOMAXPROCS(0)
	}
	d := &deps{log: log, store: st, blobs: blobs, limits: limits}
	imageprocv1.RegisterImageServiceServer(g, &Images{deps: d, transforms: make(chan struct{}, limits.Transforms)})
	imageprocv1.RegisterQueueServiceServer(g, &Queue{deps: d})
}

// collect removes blobs that no row refers to any more.
func (d *deps) collect(ctx context.Context, sums ...string) {
	for _, sum := range sums {
		used, err := d.store.BlobInUse(ctx, sum)
		if err != nil || used {
			continue // when unsure, keep: an orphan costs disk, a lost blob costs a photo
		}
		if err := d.blobs.Remove(ctx, sum); err != nil {
			d.log.WarnContext(ctx, "remove unreferenced blob", "sha256", sum, "err", err)
		}
	}
}
