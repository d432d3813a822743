package maintain_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/imageproctest"
	"github.com/kubelab/kubelab/services/platform/pgtest"
	"github.com/kubelab/kubelab/services/platform/proctest"
	"github.com/kubelab/kubelab/services/worker/internal/maintain"
)

const thumb = "thumbnail(256)|format(jpeg,85)"

// A gallery past every limit of one request (more photos missing their
// thumbnail than a batch may name) is maintained like a small one: each
// missing thumbnail queued once, none for photos that have one or are
// queued already, and nothing on a rerun. The real imageproc on the real
// PostgreSQL; the photos are rows made in one statement, since maintenance
// never reads their bytes.
func TestQueuesEveryMissingThumbnailPastTheLimits(t *testing.T) {
	const (
		photos = 12000 // every tenth has its thumbnail: 10,800 miss it
		queued = 5     // of those, already queued by an earlier run
	)
	if photos-photos/10-queued <= int(imageprocv1.Limit_LIMIT_MAX_BATCH_IMAGES) {
		t.Fatal("the gallery must be past the batch limit")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	url := pgtest.Start(t).URL(t, "kubelab")
	imageprocBin := proctest.Build(t, "github.com/kubelab/kubelab/services/imageproc")
	if code := proctest.Start(t, "migrate", imageprocBin, []string{"migrate"}, "DATABASE_URL="+url).Wait(t, time.Minute); code != 0 {
		t.Fatalf("migrate: exit %d", code)
	}
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.WithoutCancel(ctx))
	if _, err := db.Exec(ctx, `INSERT INTO images (id, filename, content_type, size_bytes, width, height, sha256)
		SELECT lpad(to_hex(g), 20, '0'), 'p.jpg', 'image/jpeg', 1, 1, 1, repeat('0', 64) FROM generate_series(1, $1) AS g`, photos); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO variants (image_id, spec, content_type, size_bytes, width, height, sha256)
		SELECT lpad(to_hex(g), 20, '0'), $1, 'image/jpeg', 1, 1, 1, repeat('1', 64) FROM generate_series(10, $2, 10) AS g`,
		thumb, photos); err != nil {
		t.Fatal(err)
	}

	srv := imageproctest.Start(t, "imageproc", "", "DATABASE_URL="+url, "LOG_LEVEL=warn")
	images, queue := srv.Clients(t)
	var earlier []string
	for g := 1; len(earlier) < queued; g++ {
		if g%10 != 0 {
			earlier = append(earlier, fmt.Sprintf("%020x", g)) // the id the INSERT gave photo g
		}
	}
	if _, err := queue.SubmitBatch(ctx, &imageprocv1.SubmitBatchRequest{ImageIds: earlier,
		Operations: []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Thumbnail{Thumbnail: &imageprocv1.Thumbnail{Size: 256}}}}}); err != nil {
		t.Fatal(err)
	}

	cfg := maintain.Config{ThumbnailSize: 256, BlobMinAge: time.Hour}
	log := slog.New(slog.DiscardHandler)
	r, err := maintain.Run(ctx, cfg, images, queue, log)
	if want := photos - photos/10 - queued; err != nil || r.MissingThumbnails != want || r.Batch == "" {
		t.Fatalf("maintain = %+v, %v; want %d queued in a batch", r, err, want)
	}
	// Every photo now has its thumbnail or exactly one task to make it.
	var wrong int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM images i WHERE
			(SELECT count(*) FROM variants v WHERE v.image_id = i.id AND v.spec = $1) +
			(SELECT count(*) FROM tasks t WHERE t.image_id = i.id AND t.spec = $1) <> 1`, thumb).Scan(&wrong); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 {
		t.Fatalf("%d photos have no thumbnail and no task, or more than one", wrong)
	}
	again, err := maintain.Run(ctx, cfg, images, queue, log)
	if err != nil || again.MissingThumbnails != 0 || again.Batch != "" {
		t.Fatalf("rerun = %+v, %v; want nothing queued", again, err)
	}
}
