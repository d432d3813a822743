// Package maintain is the worker's CronJob mode: the periodic chores that
// keep the photo lab tidy. Every step is idempotent, so a rerun after a
// crash, or a run that overlaps another (if concurrencyPolicy allowed it),
// does no harm.
package maintain

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/pipeline"
)

// Config says what to keep.
type Config struct {
	// ThumbnailSize is the gallery thumbnail every photo should have.
	ThumbnailSize int
	// VariantMaxAge expires other variants older than this; 0 keeps all.
	VariantMaxAge time.Duration
	// BlobMinAge protects blobs younger than this from collection.
	BlobMinAge time.Duration
	DryRun     bool
}

// Report is what a run did.
type Report struct {
	MissingThumbnails int    `json:"missing_thumbnails"`
	Batch             string `json:"batch,omitempty"`
	ExpiredVariants   int32  `json:"expired_variants"`
	OrphanedBlobs     int32  `json:"orphaned_blobs"`
	FreedBytes        int64  `json:"freed_bytes"`
}

// Run does the chores in order: queue thumbnails for photos that lack
// one, then expire old variants and collect orphaned blobs.
func Run(ctx context.Context, cfg Config, images imageprocv1.ImageServiceClient, queue imageprocv1.QueueServiceClient, log *slog.Logger) (Report, error) {
	var r Report
	thumbSpec := pipeline.Spec{Ops: []pipeline.Op{pipeline.Thumbnail{Size: cfg.ThumbnailSize}}, Format: pipeline.JPEG}.Normalize()
	if err := thumbSpec.Validate(); err != nil {
		return r, fmt.Errorf("THUMBNAIL_SIZE: %w", err)
	}
	thumb := thumbSpec.String()

	// Queued rather than made here: the same workers (this pod included,
	// right after) do the work, with leases and retries. imageproc picks
	// the photos in one statement, so no list of them crosses the wire
	// and no page or batch limit bounds the gallery; photos already queued
	// are skipped, so a rerun queues nothing twice.
	resp, err := queue.QueueMissingVariants(ctx, &imageprocv1.QueueMissingVariantsRequest{DryRun: cfg.DryRun,
		Operations: []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Thumbnail{Thumbnail: &imageprocv1.Thumbnail{Size: int32(cfg.ThumbnailSize)}}}}})
	if err != nil {
		return r, fmt.Errorf("queue missing thumbnails: %w", err)
	}
	r.MissingThumbnails, r.Batch = int(resp.GetMissing()), resp.GetBatch().GetId()
	switch {
	case cfg.DryRun:
		log.Info("counted missing thumbnails; dry run, none queued", "missing", r.MissingThumbnails, "spec", thumb)
	case r.Batch == "":
		log.Info("no thumbnail missing", "missing", 0, "spec", thumb)
	default:
		log.Info("queued missing thumbnails", "missing", r.MissingThumbnails, "batch", r.Batch, "spec", thumb)
	}

	gc, err := images.CollectGarbage(ctx, &imageprocv1.CollectGarbageRequest{
		VariantMaxAge: durationpb.New(cfg.VariantMaxAge), KeepSpecs: []string{thumb},
		BlobMinAge: durationpb.New(cfg.BlobMinAge), DryRun: cfg.DryRun,
	})
	if err != nil {
		return r, fmt.Errorf("collect garbage: %w", err)
	}
	r.ExpiredVariants, r.OrphanedBlobs, r.FreedBytes = gc.GetExpiredVariants(), gc.GetOrphanedBlobs(), gc.GetFreedBytes()
	log.Info("collected garbage", "expired_variants", r.ExpiredVariants, "orphaned_blobs", r.OrphanedBlobs,
		"freed_bytes", r.FreedBytes, "dry_run", cfg.DryRun)
	return r, nil
}
