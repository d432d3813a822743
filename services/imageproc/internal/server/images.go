package server

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/internal/blob"
	"github.com/kubelab/kubelab/services/imageproc/internal/store"
	"github.com/kubelab/kubelab/services/imageproc/pipeline"
	"github.com/kubelab/kubelab/services/platform/filename"
)

// Images implements imageproc.v1.ImageService.
type Images struct {
	imageprocv1.UnimplementedImageServiceServer
	*deps
	transforms chan struct{} // semaphore bounding concurrent transforms
	// renders are the transforms in progress, by content and spec.
	renders flights[store.Variant]
	// run is pipeline.Run; tests count and pace its calls through it.
	run func(context.Context, io.Writer, io.ReadSeeker, pipeline.Spec, pipeline.Limits) (pipeline.Result, error)
}

// firstMetadata receives the first message of an upload stream and returns
// the metadata it must carry.
func firstMetadata[Req any, Meta comparable](recv func() (Req, error), get func(Req) Meta) (Meta, error) {
	var none Meta
	m, err := recv()
	if err != nil {
		return none, status.Error(codes.InvalidArgument, "metadata: the stream ended before it")
	}
	md := get(m)
	if md == none {
		return none, status.Error(codes.InvalidArgument, "metadata: the first message must carry it")
	}
	return md, nil
}

// received is a committed blob that passed the upload's checks.
type received struct {
	info pipeline.Info
	size int64
	sum  string
}

// receiveImage copies the chunks of a client stream into a new blob, checks
// its header and its end (pipeline.Probe and CheckComplete: no decode, so a
// large upload costs no memory for its pixels) and accept, if given, and
// commits it. Any error is a gRPC status, and on any error nothing is kept:
// not the partial bytes of a client that went away, not a rejected image.
func (s *Images) receiveImage(ctx context.Context, what string, next func() ([]byte, bool, error), accept func(pipeline.Info) error) (received, error) {
	w, err := s.blobs.Create(s.limits.MaxUploadBytes)
	if err != nil {
		return received{}, toStatus(ctx, s.log, what, err)
	}
	defer w.Abort() // a no-op after Commit
	for {
		chunk, isChunk, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return received{}, toStatus(ctx, s.log, what, err)
		}
		if !isChunk {
			return received{}, status.Error(codes.InvalidArgument, "metadata: only the first message may carry it")
		}
		if _, err := w.Write(chunk); err != nil {
			if errors.Is(err, blob.ErrTooLarge) {
				return received{}, status.Errorf(codes.ResourceExhausted, "upload exceeds MAX_UPLOAD_BYTES=%d", s.limits.MaxUploadBytes)
			}
			return received{}, toStatus(ctx, s.log, what, err)
		}
	}
	if w.Size() == 0 {
		return received{}, status.Error(codes.InvalidArgument, "the upload has no bytes")
	}
	info, err := pipeline.Probe(w.Reader(), s.limits.MaxPixels)
	if errors.Is(err, pipeline.ErrTooLarge) {
		return received{}, status.Errorf(codes.ResourceExhausted, "%v (MAX_PIXELS=%d)", err, s.limits.MaxPixels)
	}
	if err != nil {
		return received{}, status.Errorf(codes.InvalidArgument, "not a JPEG, PNG, GIF or WebP image: %v", err)
	}
	if err := pipeline.CheckComplete(w.Reader(), w.Size(), info.Format); err != nil {
		return received{}, status.Error(codes.InvalidArgument, err.Error())
	}
	if accept != nil {
		if err := accept(info); err != nil {
			return received{}, err
		}
	}
	size := w.Size()
	sum, err := w.Commit(ctx)
	if err != nil {
		return received{}, toStatus(ctx, s.log, what, err)
	}
	return received{info: info, size: size, sum: sum}, nil
}

// Upload stores a photo from a client stream: metadata first, then chunks.
func (s *Images) Upload(stream grpc.ClientStreamingServer[imageprocv1.UploadRequest, imageprocv1.UploadResponse]) error {
	ctx := stream.Context()
	md, err := firstMetadata(stream.Recv, (*imageprocv1.UploadRequest).GetMetadata)
	if err != nil {
		return err
	}
	up, err := s.receiveImage(ctx, "upload", func() ([]byte, bool, error) {
		m, err := stream.Recv()
		return m.GetChunk(), m.GetMetadata() == nil, err
	}, func(info pipeline.Info) error { return s.viewable(ctx, info) })
	if err != nil {
		return err
	}
	token, tokenHash := newDeleteToken()
	img, err := s.store.CreateImage(ctx, store.Image{
		ID: store.NewID(), Filename: filename.Clean(md.GetFilename()), ContentType: up.info.ContentType(),
		SizeBytes: up.size, Width: up.info.Width, Height: up.info.Height, SHA256: up.sum, DeleteTokenHash: tokenHash,
	})
	if err != nil {
		s.collect(context.WithoutCancel(ctx), up.sum) // no orphan blob
		return toStatus(ctx, s.log, "record upload", err)
	}
	return stream.SendAndClose(&imageprocv1.UploadResponse{Image: imageToProto(img), DeleteToken: token})
}

// GetImage returns an image and its variants.
func (s *Images) GetImage(ctx context.Context, req *imageprocv1.GetImageRequest) (*imageprocv1.GetImageResponse, error) {
	img, err := s.store.GetImage(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, "get image", err)
	}
	vs, err := s.store.ListVariants(ctx, img.ID)
	if err != nil {
		return nil, toStatus(ctx, s.log, "list variants", err)
	}
	resp := &imageprocv1.GetImageResponse{Image: imageToProto(img)}
	for _, v := range vs {
		resp.Variants = append(resp.Variants, variantToProto(v))
	}
	return resp, nil
}

const (
	defaultPageSize = 20
	// The API's one limit, from the .proto: larger pages are clamped.
	maxPageSize = int(imageprocv1.Limit_LIMIT_MAX_PAGE_SIZE)
)

// ListImages pages through images, newest first. The page token is the
// last ID of the previous page.
func (s *Images) ListImages(ctx context.Context, req *imageprocv1.ListImagesRequest) (*imageprocv1.ListImagesResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, status.Error(codes.InvalidArgument, "page_size: must not be negative")
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	// Fetch one extra to know whether another page exists.
	imgs, err := s.store.ListImages(ctx, size+1, req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, s.log, "list images", err)
	}
	resp := &imageprocv1.ListImagesResponse{}
	if len(imgs) > size {
		imgs = imgs[:size]
		resp.NextPageToken = imgs[size-1].ID
	}
	for _, i := range imgs {
		resp.Images = append(resp.Images, imageToProto(i))
	}
	return resp, nil
}

// Download streams an original or a variant.
func (s *Images) Download(req *imageprocv1.DownloadRequest, stream grpc.ServerStreamingServer[imageprocv1.DownloadResponse]) error {
	ctx := stream.Context()
	info := &imageprocv1.BlobInfo{}
	if req.GetVariantSpec() == "" {
		img, err := s.store.GetImage(ctx, req.GetImageId())
		if err != nil {
			return toStatus(ctx, s.log, "download", err)
		}
		info.ContentType, info.SizeBytes, info.Sha256 = img.ContentType, img.SizeBytes, img.SHA256
	} else {
		v, err := s.store.GetVariant(ctx, req.GetImageId(), req.GetVariantSpec())
		if err != nil {
			return toStatus(ctx, s.log, "download", err)
		}
		info.ContentType, info.SizeBytes, info.Sha256 = v.ContentType, v.SizeBytes, v.SHA256
	}
	f, err := s.blobs.Open(ctx, info.Sha256)
	if err != nil {
		return toStatus(ctx, s.log, "open blob", fmt.Errorf("blob of %s: %w", req.GetImageId(), err))
	}
	defer f.Close()
	if err := stream.Send(&imageprocv1.DownloadResponse{Data: &imageprocv1.DownloadResponse_Info{Info: info}}); err != nil {
		return err
	}
	buf := make([]byte, chunkSize)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			// Send copies into its own frame before returning, so buf is reusable.
			if err := stream.Send(&imageprocv1.DownloadResponse{Data: &imageprocv1.DownloadResponse_Chunk{Chunk: buf[:n]}}); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return toStatus(ctx, s.log, "read blob", err)
		}
	}
}

// Transform makes (or finds) the variant for the requested operations.
//
// Identical requests arriving together share one render, keyed by the
// original's content and the canonical spec: the first starts it, the
// others wait for it, and it stops only when every one of them has gone.
// Each then records the variant for its own image (images with the same
// content share the rendered blob).
func (s *Images) Transform(ctx context.Context, req *imageprocv1.TransformRequest) (*imageprocv1.TransformResponse, error) {
	spec, err := specFromProto(req.GetOperations(), req.GetOutput())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	img, err := s.store.GetImage(ctx, req.GetImageId())
	if err != nil {
		return nil, toStatus(ctx, s.log, "transform", err)
	}
	if img.DecodeError != "" {
		return nil, undecodable(img.DecodeError)
	}
	key := spec.String()
	if v, err := s.store.GetVariant(ctx, img.ID, key); err == nil {
		return &imageprocv1.TransformResponse{Variant: variantToProto(v), Cached: true}, nil
	}

	v, release, err := s.renders.do(ctx, img.SHA256+"|"+key, func(ctx context.Context) (store.Variant, error) {
		return s.renderInSlot(ctx, img, spec)
	}, s.collectVariant)
	if errors.Is(err, pipeline.ErrOverBudget) {
		return nil, s.overBudget(err)
	}
	if errors.Is(err, pipeline.ErrInvalid) {
		return nil, undecodable(err.Error())
	}
	if err != nil {
		return nil, toStatus(ctx, s.log, "transform", err)
	}
	v.ImageID = img.ID
	stored, created, err := s.store.PutVariant(ctx, v)
	// Unused when it failed, or lost a race to a different blob (kept the
	// first); the last of the callers sharing the render cleans it up.
	release(err == nil && stored.SHA256 == v.SHA256)
	if err != nil {
		return nil, toStatus(ctx, s.log, "record variant", err)
	}
	return &imageprocv1.TransformResponse{Variant: variantToProto(stored), Cached: !created}, nil
}

// undecodable is the answer for a photo that passed the upload's checks but
// cannot be decoded: FailedPrecondition, as the request is fine and the
// photo is what stops it (retrying will not help; deleting it would).
func undecodable(why string) error {
	return status.Errorf(codes.FailedPrecondition, "the photo cannot be decoded: %s", why)
}

// collectVariant removes a rendered blob that no row came to refer to.
func (s *Images) collectVariant(ctx context.Context, v store.Variant) { s.collect(ctx, v.SHA256) }

// renderInSlot waits for a transform slot, then renders, unless the
// variant appeared meanwhile (made by another pod, or by a render that
// ended just before this one started). When ctx ends it gives the slot, or
// its place in the queue for one, back at once.
func (s *Images) renderInSlot(ctx context.Context, img store.Image, spec pipeline.Spec) (store.Variant, error) {
	select {
	case s.transforms <- struct{}{}:
		defer func() { <-s.transforms }()
	case <-ctx.Done():
		return store.Variant{}, ctx.Err()
	}
	if v, err := s.store.GetVariant(ctx, img.ID, spec.String()); err == nil {
		return v, nil
	}
	return s.render(ctx, img, spec)
}

// render runs the pipeline on an image's original into a new blob.
func (s *Images) render(ctx context.Context, img store.Image, spec pipeline.Spec) (store.Variant, error) {
	src, err := s.blobs.Open(ctx, img.SHA256)
	if err != nil {
		return store.Variant{}, err
	}
	defer src.Close()
	w, err := s.blobs.Create(s.limits.MaxUploadBytes)
	if err != nil {
		return store.Variant{}, err
	}
	defer w.Abort()
	run := s.run
	if run == nil {
		run = pipeline.Run
	}
	res, err := run(ctx, w, src, spec, s.pipelineLimits())
	if errors.Is(err, pipeline.ErrInvalid) && ctx.Err() == nil {
		// The upload checked only the header and the end marker, so a photo
		// corrupt inside fails here, and would again on every gallery view
		// (a full decode per request, for nothing). Record it once, for
		// every pod: Transform then answers from the record. Cancellation
		// and over-budget runs say nothing about the bytes and are not kept.
		if rerr := s.store.RecordDecodeError(ctx, img.SHA256, err.Error()); rerr != nil {
			s.log.WarnContext(ctx, "record decode error", "image", img.ID, "err", rerr)
		}
	}
	if err != nil {
		return store.Variant{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Variant{}, err
	}
	size := w.Size()
	sum, err := w.Commit(ctx)
	if err != nil {
		return store.Variant{}, err
	}
	return store.Variant{ImageID: img.ID, Spec: spec.String(), ContentType: res.ContentType, SizeBytes: size,
		Width: res.Width, Height: res.Height, SHA256: sum}, nil
}

// UploadVariant stores a variant a worker made.
func (s *Images) UploadVariant(stream grpc.ClientStreamingServer[imageprocv1.UploadVariantRequest, imageprocv1.UploadVariantResponse]) error {
	ctx := stream.Context()
	md, err := firstMetadata(stream.Recv, (*imageprocv1.UploadVariantRequest).GetMetadata)
	if err != nil {
		return err
	}
	spec, err := pipeline.ParseSpec(md.GetSpec())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "metadata.spec: %v", err)
	}
	if _, err := s.store.GetImage(ctx, md.GetImageId()); err != nil {
		return toStatus(ctx, s.log, "upload variant", err)
	}
	up, err := s.receiveImage(ctx, "upload variant", func() ([]byte, bool, error) {
		m, err := stream.Recv()
		return m.GetChunk(), m.GetMetadata() == nil, err
	}, func(info pipeline.Info) error {
		if info.ContentType() != spec.Format.ContentType() {
			return status.Errorf(codes.InvalidArgument, "the variant is %s but the spec asks for %s", info.ContentType(), spec.Format.ContentType())
		}
		return nil
	})
	if err != nil {
		return err
	}
	stored, created, err := s.store.PutVariant(ctx, store.Variant{ImageID: md.GetImageId(), Spec: md.GetSpec(),
		ContentType: up.info.ContentType(), SizeBytes: up.size, Width: up.info.Width, Height: up.info.Height, SHA256: up.sum})
	if err != nil || stored.SHA256 != up.sum {
		s.collect(context.WithoutCancel(ctx), up.sum)
	}
	if err != nil {
		return toStatus(ctx, s.log, "record variant", err)
	}
	return stream.SendAndClose(&imageprocv1.UploadVariantResponse{Variant: variantToProto(stored), Existed: !created})
}
