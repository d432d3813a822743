package server_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// orphan writes a blob the way a crash between "blob written" and "row
// recorded" leaves one, modified age ago, and returns its path.
func orphan(t *testing.T, dir, content string, age time.Duration) string {
	t.Helper()
	sum := sha256.Sum256([]byte(content))
	name := hex.EncodeToString(sum[:])
	path := filepath.Join(dir, "blobs", "sha256", name[:2], name)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	then := time.Now().Add(-age)
	if err := os.Chtimes(path, then, then); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCollectGarbage(t *testing.T) {
	e := start(t, defaultLimits)
	ctx := t.Context()
	img, err := e.upload(ctx, "keep.jpg", pipelinetest.JPEG(64, 48, 1))
	if err != nil {
		t.Fatal(err)
	}
	thumb := []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Thumbnail{Thumbnail: &imageprocv1.Thumbnail{Size: 16}}}}
	gray := []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Grayscale{Grayscale: &imageprocv1.Grayscale{}}}}
	for _, ops := range [][]*imageprocv1.Operation{thumb, gray} {
		if _, err := e.images.Transform(ctx, &imageprocv1.TransformRequest{ImageId: img.GetId(), Operations: ops}); err != nil {
			t.Fatal(err)
		}
	}
	old := orphan(t, e.dir, "left by a crash an hour ago", 2*time.Hour)
	fresh := orphan(t, e.dir, "an upload whose row is being written", 0)

	gc := func(req *imageprocv1.CollectGarbageRequest) *imageprocv1.CollectGarbageResponse {
		t.Helper()
		resp, err := e.images.CollectGarbage(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	hour := durationpb.New(time.Hour)
	if _, err := e.images.CollectGarbage(ctx, &imageprocv1.CollectGarbageRequest{BlobMinAge: durationpb.New(time.Second)}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("blob_min_age of 1s: %v, want InvalidArgument", err)
	}

	dry := gc(&imageprocv1.CollectGarbageRequest{BlobMinAge: hour, DryRun: true})
	if dry.GetOrphanedBlobs() != 1 || dry.GetFreedBytes() != int64(len("left by a crash an hour ago")) {
		t.Fatalf("dry run %v", dry)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatal("dry run deleted a blob")
	}

	resp := gc(&imageprocv1.CollectGarbageRequest{BlobMinAge: hour, VariantMaxAge: durationpb.New(time.Nanosecond),
		KeepSpecs: []string{"thumbnail(16)|format(jpeg,85)"}})
	if resp.GetExpiredVariants() != 1 || resp.GetOrphanedBlobs() != 1 {
		t.Fatalf("collect: %v", resp)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatal("the old orphan is still there")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatal("a fresh blob was collected: an upload in flight would lose its photo")
	}
	got, err := e.images.GetImage(ctx, &imageprocv1.GetImageRequest{Id: img.GetId()})
	if err != nil || len(got.GetVariants()) != 1 || got.GetVariants()[0].GetSpec() != "thumbnail(16)|format(jpeg,85)" {
		t.Fatalf("after collection: %v %v", got, err)
	}
	// The photo and the kept variant still download.
	for _, spec := range []string{"", "thumbnail(16)|format(jpeg,85)"} {
		if _, _, err := e.download(ctx, img.GetId(), spec); err != nil {
			t.Fatalf("download %q after collection: %v", spec, err)
		}
	}
	// A second run finds nothing more (the expired variant's blob is fresh).
	if again := gc(&imageprocv1.CollectGarbageRequest{BlobMinAge: hour}); again.GetOrphanedBlobs() != 0 || again.GetExpiredVariants() != 0 {
		t.Fatalf("second run: %v", again)
	}
}
