package server

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
)

// minBlobAge is the least blob_min_age accepted: an upload writes its blob
// before its row, and must never lose the blob in between.
const minBlobAge = time.Minute

// CollectGarbage expires old variants, then removes blobs no row refers to.
func (s *Images) CollectGarbage(ctx context.Context, req *imageprocv1.CollectGarbageRequest) (*imageprocv1.CollectGarbageResponse, error) {
	minAge := req.GetBlobMinAge().AsDuration()
	if req.GetBlobMinAge() == nil || minAge < minBlobAge {
		return nil, status.Errorf(codes.InvalidArgument, "blob_min_age: must be at least %v", minBlobAge)
	}
	maxAge := req.GetVariantMaxAge().AsDuration()
	if maxAge < 0 {
		return nil, status.Error(codes.InvalidArgument, "variant_max_age: must not be negative")
	}
	resp := &imageprocv1.CollectGarbageResponse{}
	if maxAge > 0 && !req.GetDryRun() {
		sums, err := s.store.ExpireVariants(ctx, time.Now().Add(-maxAge), req.GetKeepSpecs())
		if err != nil {
			return nil, toStatus(ctx, s.log, "expire variants", err)
		}
		resp.ExpiredVariants = int32(len(sums))
		// Their blobs are collected below with every other orphan; a
		// blob shared with a newer variant or photo stays.
		s.log.InfoContext(ctx, "expired variants", "count", len(sums), "older_than", maxAge.String())
	}

	cutoff := time.Now().Add(-minAge)
	err := s.blobs.Walk(ctx, func(sum string, size int64, modTime time.Time) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A blob touched recently may belong to an upload whose row is
		// not written yet (blobs are committed first, then recorded).
		if modTime.After(cutoff) {
			return nil
		}
		used, err := s.store.BlobInUse(ctx, sum)
		if err != nil || used {
			return err
		}
		resp.OrphanedBlobs++
		resp.FreedBytes += size
		if req.GetDryRun() {
			return nil
		}
		s.log.InfoContext(ctx, "removing orphaned blob", "sha256", sum, "bytes", size, "modified", modTime)
		return s.blobs.Remove(ctx, sum)
	})
	if err != nil {
		return nil, toStatus(ctx, s.log, "collect garbage", err)
	}
	return resp, nil
}
