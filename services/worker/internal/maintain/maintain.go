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
	Images            int    `json:"images"`
	MissingThumbnails int    `json:"missing_thumbnails"`
	Batch             string `json:"batch,omitempty"`
	ExpiredVariants   int32  `json:"expired_variants"`
	OrphanedBlobs     int32  `json:"orphaned_blobs"`
	FreedBytes        int64  `json:"freed_bytes"`
}

// maxImages bounds one run's walk over the gallery.
const maxImages = 100000

// Run does the chores in order: queue thumbnails for photos that lack
// one, then expire old variants and collect orphaned blobs.
func Run(ctx context.Context, cfg Config, images imageprocv1.ImageServiceClient, queue imageprocv1.QueueServiceClient, log *slog.Logger) (Report, error) {
	var r Report
	thumbSpec := pipeline.Spec{Ops: []pipeline.Op{pipeline.Thumbnail{Size: cfg.ThumbnailSize}}, Format: pipeline.JPEG}.Normalize()
	if err := thumbSpec.Validate(); err != nil {
		return r, fmt.Errorf("THUMBNAIL_SIZE: %w", err)
	}
	thumb := thumbSpec.String()

	var missing []string
	for token := ""; r.Images < maxImages; {
		page, err := images.ListImages(ctx, &imageprocv1.ListImagesRequest{PageSize: 500, PageToken: token})
		if err != nil {
			return r, fmt.Errorf("list images: %w", err)
		}
		for _, img := range page.GetImages() {
			r.Images++
			got, err := images.GetImage(ctx, &imageprocv1.GetImageRequest{Id: img.GetId()})
			if err != nil {
				return r, fmt.Errorf("get image %s: %w", img.GetId(), err)
			}
			if !hasSpec(got.GetVariants(), thumb) {
				missing = append(missing, img.GetId())
			}
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	r.MissingThumbnails = len(missing)
	log.Info("checked thumbnails", "images", r.Images, "missing", len(missing), "spec", thumb)
	if len(missing) > 0 && !cfg.DryRun {
		// Queued rather than made here: the same workers (this pod
		// included, right after) do the work, with leases and retries. A
		// rerun may queue a photo twice; the second task finds the
		// variant stored and changes nothing.
		resp, err := queue.SubmitBatch(ctx, &imageprocv1.SubmitBatchRequest{ImageIds: missing,
			Operations: []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Thumbnail{Thumbnail: &imageprocv1.Thumbnail{Size: int32(cfg.ThumbnailSize)}}}}})
		if err != nil {
			return r, fmt.Errorf("queue missing thumbnails: %w", err)
		}
		r.Batch = resp.GetBatch().GetId()
		log.Info("queued missing thumbnails", "batch", r.Batch, "tasks", len(missing))
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

func hasSpec(vs []*imageprocv1.Variant, spec string) bool {
	for _, v := range vs {
		if v.GetSpec() == spec {
			return true
		}
	}
	return false
}
