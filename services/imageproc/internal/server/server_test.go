package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/internal/blob"
	"github.com/kubelab/kubelab/services/imageproc/internal/server"
	"github.com/kubelab/kubelab/services/imageproc/internal/store"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/grpcmetrics"
	"github.com/kubelab/kubelab/services/platform/grpcserver"
	"github.com/kubelab/kubelab/services/platform/health"
	"github.com/kubelab/kubelab/services/platform/telemetry"
)

type env struct {
	images imageprocv1.ImageServiceClient
	queue  imageprocv1.QueueServiceClient
	dir    string
}

// start serves both services over real TCP on loopback, with a SQLite
// store and blobs in a temp dir.
func start(t testing.TB, limits server.Limits) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
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
	g := grpcserver.New(grpcserver.Options{Log: log, Metrics: grpcmetrics.New(telemetry.NewMetrics(build.Current("test")).Registry),
		Health: health.NewChecker(log, time.Hour, time.Second), Instance: "imageproc-test-0"})
	server.Register(g, log, st, blobs, limits)
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
	return &env{images: imageprocv1.NewImageServiceClient(conn), queue: imageprocv1.NewQueueServiceClient(conn), dir: dir}
}

var defaultLimits = server.Limits{MaxUploadBytes: 8 << 20, MaxPixels: 20_000_000}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// upload sends data in 32 KiB chunks.
func (e *env) upload(ctx context.Context, name string, data []byte) (*imageprocv1.Image, error) {
	return e.uploadFrom(ctx, name, bytes.NewReader(data))
}

// uploadFrom streams r in 32 KiB chunks, reusing one buffer.
func (e *env) uploadFrom(ctx context.Context, name string, r io.Reader) (*imageprocv1.Image, error) {
	resp, err := e.uploadResponse(ctx, name, r)
	return resp.GetImage(), err
}

// uploadResponse is uploadFrom's whole answer, delete token included.
func (e *env) uploadResponse(ctx context.Context, name string, r io.Reader) (*imageprocv1.UploadResponse, error) {
	stream, err := e.images.Upload(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Metadata{Metadata: &imageprocv1.UploadMetadata{Filename: name}}}); err != nil {
		return nil, err
	}
	buf := make([]byte, 32<<10)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := stream.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Chunk{Chunk: buf[:n]}}); err != nil {
				break // the server closed early; CloseAndRecv has its status
			}
		}
		if rerr != nil {
			break
		}
	}
	return stream.CloseAndRecv()
}

func (e *env) download(ctx context.Context, id, spec string) (*imageprocv1.BlobInfo, []byte, error) {
	stream, err := e.images.Download(ctx, &imageprocv1.DownloadRequest{ImageId: id, VariantSpec: spec})
	if err != nil {
		return nil, nil, err
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return first.GetInfo(), buf.Bytes(), nil
		}
		if err != nil {
			return nil, nil, err
		}
		buf.Write(m.GetChunk())
	}
}

// blobCount counts committed and temporary blob files.
func (e *env) blobCount(t *testing.T) (committed, tmp int) {
	t.Helper()
	root := filepath.Join(e.dir, "blobs")
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ".lock" {
			return err
		}
		if rel, _ := filepath.Rel(root, p); strings.HasPrefix(rel, "tmp"+string(filepath.Separator)) {
			tmp++
		} else {
			committed++
		}
		return nil
	})
	return committed, tmp
}

func TestUploadDownloadRoundTrip(t *testing.T) {
	e := start(t, defaultLimits)
	c := ctx(t)
	photo := pipelinetest.JPEG(640, 480, 1)
	var header metadata.MD
	stream, err := e.images.Upload(c, grpc.Header(&header))
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Metadata{Metadata: &imageprocv1.UploadMetadata{Filename: "../../etc/holiday\x00.jpg"}}})
	_ = stream.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Chunk{Chunk: photo}})
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	img := resp.GetImage()
	sum := sha256.Sum256(photo)
	if img.GetWidth() != 640 || img.GetHeight() != 480 || img.GetContentType() != "image/jpeg" ||
		img.GetSha256() != hex.EncodeToString(sum[:]) || img.GetFilename() != "holiday.jpg" {
		t.Fatalf("uploaded %+v", img)
	}
	if got := header.Get(grpcserver.ServedByHeader); len(got) != 1 || got[0] != "imageproc-test-0" {
		t.Fatalf("served-by header = %v", got)
	}
	info, data, err := e.download(c, img.GetId(), "")
	if err != nil || !bytes.Equal(data, photo) || info.GetSizeBytes() != int64(len(photo)) {
		t.Fatalf("download: %v, %d bytes, info %+v", err, len(data), info)
	}
	got, err := e.images.GetImage(c, &imageprocv1.GetImageRequest{Id: img.GetId()})
	if err != nil || got.GetImage().GetId() != img.GetId() {
		t.Fatalf("GetImage = %v, %v", got, err)
	}
}

func TestUploadRejectsBadInputLeavingNothing(t *testing.T) {
	e := start(t, server.Limits{MaxUploadBytes: 64 << 10, MaxPixels: 1_000_000})
	photo := pipelinetest.JPEG(300, 200, 2)
	tests := []struct {
		name string
		send func(imageprocv1.ImageService_UploadClient)
		code codes.Code
		msg  string
	}{
		{"empty stream", func(imageprocv1.ImageService_UploadClient) {}, codes.InvalidArgument, "ended before"},
		{"no metadata", func(s imageprocv1.ImageService_UploadClient) {
			_ = s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Chunk{Chunk: photo}})
		}, codes.InvalidArgument, "metadata"},
		{"no bytes", func(s imageprocv1.ImageService_UploadClient) { sendMeta(s) }, codes.InvalidArgument, "no bytes"},
		{"not an image", func(s imageprocv1.ImageService_UploadClient) {
			sendMeta(s)
			_ = s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Chunk{Chunk: []byte("#!/bin/sh\necho hi\n")}})
		}, codes.InvalidArgument, "not a JPEG"},
		{"truncated", func(s imageprocv1.ImageService_UploadClient) {
			sendMeta(s)
			_ = s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Chunk{Chunk: photo[:len(photo)-200]}})
		}, codes.InvalidArgument, "truncated"},
		{"metadata twice", func(s imageprocv1.ImageService_UploadClient) {
			sendMeta(s)
			sendMeta(s)
		}, codes.InvalidArgument, "only the first"},
		{"too many bytes", func(s imageprocv1.ImageService_UploadClient) {
			sendMeta(s)
			for range 3 {
				_ = s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Chunk{Chunk: make([]byte, 30<<10)}})
			}
		}, codes.ResourceExhausted, "MAX_UPLOAD_BYTES"},
		{"too many pixels", func(s imageprocv1.ImageService_UploadClient) {
			sendMeta(s)
			var flat bytes.Buffer // 1.2 MP of one grey: a few hundred bytes of PNG
			_ = png.Encode(&flat, image.NewGray(image.Rect(0, 0, 1200, 1000)))
			_ = s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Chunk{Chunk: flat.Bytes()}})
		}, codes.ResourceExhausted, "MAX_PIXELS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := e.images.Upload(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			tt.send(s)
			_, err = s.CloseAndRecv()
			if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.code, tt.msg)
			}
		})
	}
	// A client that goes away mid-upload leaves nothing either.
	c, cancel := context.WithCancel(t.Context())
	s, _ := e.images.Upload(c)
	sendMeta(s)
	_ = s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Chunk{Chunk: photo[:1000]}})
	cancel()
	time.Sleep(100 * time.Millisecond)

	list, err := e.images.ListImages(ctx(t), &imageprocv1.ListImagesRequest{})
	if err != nil || len(list.GetImages()) != 0 {
		t.Fatalf("images after bad uploads: %v, %v", list.GetImages(), err)
	}
	if committed, tmp := e.blobCount(t); committed != 0 || tmp != 0 {
		t.Fatalf("bad uploads left %d blobs and %d temp files", committed, tmp)
	}
}

func sendMeta(s imageprocv1.ImageService_UploadClient) {
	_ = s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Metadata{Metadata: &imageprocv1.UploadMetadata{Filename: "x.jpg"}}})
}

func thumb(size int32) []*imageprocv1.Operation {
	return []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Thumbnail{Thumbnail: &imageprocv1.Thumbnail{Size: size}}}}
}

func TestTransformCachesBySpec(t *testing.T) {
	e := start(t, defaultLimits)
	c := ctx(t)
	img, err := e.upload(c, "a.jpg", pipelinetest.JPEG(800, 600, 4))
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.images.Transform(c, &imageprocv1.TransformRequest{ImageId: img.GetId(), Operations: thumb(100)})
	if err != nil {
		t.Fatal(err)
	}
	v := first.GetVariant()
	if first.GetCached() || v.GetSpec() != "thumbnail(100)|format(jpeg,85)" || v.GetWidth() != 100 || v.GetHeight() != 75 {
		t.Fatalf("first transform %+v", first)
	}
	// The same request, spelled with explicit defaults, is the same variant.
	second, err := e.images.Transform(c, &imageprocv1.TransformRequest{ImageId: img.GetId(), Operations: thumb(100),
		Output: &imageprocv1.Output{Format: imageprocv1.Format_FORMAT_JPEG, Quality: 85}})
	if err != nil || !second.GetCached() || second.GetVariant().GetSha256() != v.GetSha256() {
		t.Fatalf("second transform %+v, %v", second, err)
	}
	_, data, err := e.download(c, img.GetId(), v.GetSpec())
	if err != nil {
		t.Fatal(err)
	}
	dec, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil || dec.Bounds().Dx() != 100 {
		t.Fatalf("variant decodes to %v, %v", dec, err)
	}

	bad := []struct {
		ops  []*imageprocv1.Operation
		want string
	}{
		{nil, "operations: at least one"},
		{thumb(0), "operations[0]: thumbnail size"},
		{[]*imageprocv1.Operation{{}}, "operations[0]: no operation set"},
		{[]*imageprocv1.Operation{{Op: &imageprocv1.Operation_Rotate{Rotate: &imageprocv1.Rotate{Degrees: 45}}}}, "rotate degrees"},
	}
	for _, b := range bad {
		_, err := e.images.Transform(c, &imageprocv1.TransformRequest{ImageId: img.GetId(), Operations: b.ops})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), b.want) {
			t.Errorf("ops %v: err = %v, want InvalidArgument %q", b.ops, err, b.want)
		}
	}
	if _, err := e.images.Transform(c, &imageprocv1.TransformRequest{ImageId: "nope", Operations: thumb(10)}); status.Code(err) != codes.NotFound {
		t.Fatalf("transform of a missing image: %v", err)
	}
}

func TestDeleteRemovesBlobs(t *testing.T) {
	e := start(t, defaultLimits)
	c := ctx(t)
	photo := pipelinetest.JPEG(200, 100, 5)
	up, err := e.uploadResponse(c, "a.jpg", bytes.NewReader(photo))
	if err != nil {
		t.Fatal(err)
	}
	a := up.GetImage()
	b, err := e.upload(c, "same-bytes.jpg", photo) // shares a's blob
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.images.Transform(c, &imageprocv1.TransformRequest{ImageId: a.GetId(), Operations: thumb(50)}); err != nil {
		t.Fatal(err)
	}
	if committed, _ := e.blobCount(t); committed != 2 {
		t.Fatalf("%d blobs, want original + variant", committed)
	}
	if _, err := e.images.DeleteImage(c, &imageprocv1.DeleteImageRequest{Id: a.GetId(), DeleteToken: up.GetDeleteToken()}); err != nil {
		t.Fatal(err)
	}
	if committed, _ := e.blobCount(t); committed != 1 {
		t.Fatalf("%d blobs after delete, want the shared original only", committed)
	}
	if _, data, err := e.download(c, b.GetId(), ""); err != nil || !bytes.Equal(data, photo) {
		t.Fatalf("the other image lost its blob: %v", err)
	}
	if _, err := e.images.GetImage(c, &imageprocv1.GetImageRequest{Id: a.GetId()}); status.Code(err) != codes.NotFound {
		t.Fatalf("deleted image: %v", err)
	}
}

func TestListPagination(t *testing.T) {
	e := start(t, defaultLimits)
	c := ctx(t)
	for i := range 5 {
		if _, err := e.upload(c, "p.png", pipelinetest.PNG(20, 10, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	token := ""
	for range 5 {
		resp, err := e.images.ListImages(c, &imageprocv1.ListImagesRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range resp.GetImages() {
			ids = append(ids, i.GetId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(ids) != 5 {
		t.Fatalf("paged through %d images, want 5", len(ids))
	}
	if _, err := e.images.ListImages(c, &imageprocv1.ListImagesRequest{PageSize: -1}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("negative page size: %v", err)
	}
}

// TestQueueOverGRPC runs a worker's cycle by hand: claim, make the variant,
// upload it, complete.
func TestQueueOverGRPC(t *testing.T) {
	e := start(t, defaultLimits)
	c := ctx(t)
	img, err := e.upload(c, "q.jpg", pipelinetest.JPEG(400, 300, 6))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := e.queue.SubmitBatch(c, &imageprocv1.SubmitBatchRequest{Operations: thumb(64)})
	if err != nil || sub.GetBatch().GetTotal() != 1 {
		t.Fatalf("submit = %v, %v", sub, err)
	}
	claim, err := e.queue.ClaimTasks(c, &imageprocv1.ClaimTasksRequest{Worker: "w1", MaxTasks: 5, Lease: durationpb.New(time.Minute)})
	if err != nil || len(claim.GetTasks()) != 1 {
		t.Fatalf("claim = %v, %v", claim, err)
	}
	task := claim.GetTasks()[0]
	if task.GetImageId() != img.GetId() || task.GetSpec() != "thumbnail(64)|format(jpeg,85)" || task.GetLeaseExpireTime() == nil {
		t.Fatalf("task %+v", task)
	}
	var variant bytes.Buffer
	if err := jpeg.Encode(&variant, pipelinetest.Photo(64, 48, 1), nil); err != nil {
		t.Fatal(err)
	}
	for attempt := range 2 { // a redo uploads again: still one variant
		up, err := e.images.UploadVariant(c)
		if err != nil {
			t.Fatal(err)
		}
		_ = up.Send(&imageprocv1.UploadVariantRequest{Data: &imageprocv1.UploadVariantRequest_Metadata{Metadata: &imageprocv1.UploadVariantMetadata{ImageId: img.GetId(), Spec: task.GetSpec()}}})
		_ = up.Send(&imageprocv1.UploadVariantRequest{Data: &imageprocv1.UploadVariantRequest_Chunk{Chunk: variant.Bytes()}})
		resp, err := up.CloseAndRecv()
		if err != nil || resp.GetExisted() != (attempt == 1) {
			t.Fatalf("upload variant %d = %+v, %v", attempt, resp, err)
		}
	}
	if _, err := e.queue.CompleteTask(c, &imageprocv1.CompleteTaskRequest{TaskId: task.GetId(), Worker: "w2"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("complete by a worker without the lease: %v", err)
	}
	if _, err := e.queue.CompleteTask(c, &imageprocv1.CompleteTaskRequest{TaskId: task.GetId(), Worker: "w1"}); err != nil {
		t.Fatal(err)
	}
	b, err := e.queue.GetBatch(c, &imageprocv1.GetBatchRequest{Id: sub.GetBatch().GetId()})
	if err != nil || b.GetBatch().GetDone() != 1 {
		t.Fatalf("batch = %v, %v", b, err)
	}
	got, _ := e.images.GetImage(c, &imageprocv1.GetImageRequest{Id: img.GetId()})
	if len(got.GetVariants()) != 1 {
		t.Fatalf("variants = %v", got.GetVariants())
	}

	invalid := []*imageprocv1.ClaimTasksRequest{
		{MaxTasks: 1, Lease: durationpb.New(time.Minute)},
		{Worker: "w", MaxTasks: 0, Lease: durationpb.New(time.Minute)},
		{Worker: "w", MaxTasks: 1},
		{Worker: "w", MaxTasks: 1, Lease: durationpb.New(time.Minute), ShardIndex: 3, ShardCount: 3},
	}
	for _, req := range invalid {
		if _, err := e.queue.ClaimTasks(c, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("claim %+v: %v, want InvalidArgument", req, err)
		}
	}
	if _, err := e.queue.CompleteTask(c, &imageprocv1.CompleteTaskRequest{TaskId: "x", Worker: "w"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad task id: %v", err)
	}
}

func TestUploadVariantRejectsWrongFormat(t *testing.T) {
	e := start(t, defaultLimits)
	c := ctx(t)
	img, err := e.upload(c, "v.jpg", pipelinetest.JPEG(120, 90, 8))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		spec string
		data []byte
		code codes.Code
		msg  string
	}{
		{"thumbnail(64)|format(jpeg,85)", pipelinetest.PNG(64, 48, 1), codes.InvalidArgument, "spec asks for image/jpeg"},
		{"thumbnail(64)", pipelinetest.JPEG(64, 48, 1), codes.InvalidArgument, "metadata.spec"},
	}
	for _, tt := range tests {
		up, err := e.images.UploadVariant(c)
		if err != nil {
			t.Fatal(err)
		}
		_ = up.Send(&imageprocv1.UploadVariantRequest{Data: &imageprocv1.UploadVariantRequest_Metadata{Metadata: &imageprocv1.UploadVariantMetadata{ImageId: img.GetId(), Spec: tt.spec}}})
		_ = up.Send(&imageprocv1.UploadVariantRequest{Data: &imageprocv1.UploadVariantRequest_Chunk{Chunk: tt.data}})
		_, err = up.CloseAndRecv()
		if status.Code(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: err = %v, want %v containing %q", tt.spec, err, tt.code, tt.msg)
		}
	}
	if committed, tmp := e.blobCount(t); committed != 1 || tmp != 0 {
		t.Fatalf("%d blobs and %d temp files, want only the original", committed, tmp)
	}
}
