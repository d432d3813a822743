package work_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/imageproctest"
	"github.com/kubelab/kubelab/services/imageproc/pipeline"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
	"github.com/kubelab/kubelab/services/platform/pgtest"
	"github.com/kubelab/kubelab/services/platform/proctest"
	"github.com/kubelab/kubelab/services/worker/internal/work"
)

type clients struct {
	images imageprocv1.ImageServiceClient
	queue  imageprocv1.QueueServiceClient
}

// imageproc runs the real imageproc binary on the store named: "sqlite"
// (embedded, every commit fsynced) or "postgres" (a throwaway server).
func imageproc(b *testing.B, store string) clients {
	b.Helper()
	dbURL := ""
	if store == "postgres" {
		dbURL = pgtest.Start(b).URL(b, "kubelab")
		migrate := proctest.Start(b, "migrate", proctest.Build(b, "github.com/kubelab/kubelab/services/imageproc"), []string{"migrate"}, "DATABASE_URL="+dbURL)
		if code := migrate.Wait(b, time.Minute); code != 0 {
			b.Fatalf("migrate: exit %d", code)
		}
	}
	srv := imageproctest.Start(b, "imageproc", "", "DATABASE_URL="+dbURL, "LOG_LEVEL=warn")
	var c clients
	c.images, c.queue = srv.Clients(b)
	return c
}

func (c clients) upload(b *testing.B, n int, data []byte) []string {
	b.Helper()
	var ids []string
	for range n {
		img, err := imageproctest.Upload(b.Context(), c.images, "p.jpg", data)
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, img.GetId())
	}
	return ids
}

func (c clients) submit(b *testing.B, ids []string, ops []*imageprocv1.Operation) string {
	b.Helper()
	resp, err := c.queue.SubmitBatch(b.Context(), &imageprocv1.SubmitBatchRequest{ImageIds: ids, Operations: ops})
	if err != nil {
		b.Fatal(err)
	}
	return resp.GetBatch().GetId()
}

// A camera-sized photo and the gallery thumbnail: the typical task.
var (
	photo     = pipelinetest.JPEG(3000, 2000, 11)
	thumbSpec = pipeline.Spec{Ops: []pipeline.Op{pipeline.Thumbnail{Size: 256}}, Format: pipeline.JPEG}.Normalize()
	thumbOps  = []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Thumbnail{Thumbnail: &imageprocv1.Thumbnail{Size: 256}}}}
)

// BenchmarkQueueOverhead puts the queue's round trips for one task (claim,
// complete) next to the pipeline time of the task itself, measured in the
// same run, and reports the queue's share.
func BenchmarkQueueOverhead(b *testing.B) {
	for _, store := range []string{"sqlite", "postgres"} {
		b.Run("store="+store, func(b *testing.B) { queueOverhead(b, imageproc(b, store)) })
	}
}

func queueOverhead(b *testing.B, c clients) {
	ids := c.upload(b, 100, pipelinetest.JPEG(64, 48, 1))
	var queued int
	var queue, pipe time.Duration
	for b.Loop() {
		if queued == 0 {
			b.StopTimer()
			c.submit(b, ids, thumbOps)
			queued = len(ids)
			b.StartTimer()
		}
		t0 := time.Now()
		resp, err := c.queue.ClaimTasks(b.Context(), &imageprocv1.ClaimTasksRequest{Worker: "bench", MaxTasks: 1, Lease: durationpb.New(time.Minute)})
		if err != nil || len(resp.GetTasks()) != 1 {
			b.Fatalf("claim: %v %v", resp, err)
		}
		if _, err := c.queue.CompleteTask(b.Context(), &imageprocv1.CompleteTaskRequest{TaskId: resp.GetTasks()[0].GetId(), Worker: "bench"}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := pipeline.Run(b.Context(), io.Discard, bytes.NewReader(photo), thumbSpec, pipeline.Limits{MaxPixels: 50_000_000}); err != nil {
			b.Fatal(err)
		}
		queue += t1.Sub(t0)
		pipe += time.Since(t1)
		queued--
	}
	n := float64(b.N)
	b.ReportMetric(queue.Seconds()*1000/n, "queue-ms/task")
	b.ReportMetric(pipe.Seconds()*1000/n, "pipeline-ms/task")
	b.ReportMetric(100*queue.Seconds()/pipe.Seconds(), "queue-%")
}

// BenchmarkWorkers runs a batch of thumbnail tasks on 3000×2000 photos
// through Workers of 1, 2 and 4 slots (each slot a worker in a Job) against
// imageproc on PostgreSQL, as in the cluster, and reports tasks/s: the
// whole path, download, pipeline, upload, queue.
func BenchmarkWorkers(b *testing.B) {
	c := imageproc(b, "postgres")
	ids := c.upload(b, 16, photo)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			var tasks int
			var took time.Duration
			for b.Loop() {
				b.StopTimer()
				batch := c.submit(b, ids, []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Thumbnail{
					Thumbnail: &imageprocv1.Thumbnail{Size: int32(100 + tasks%150)}}}}) // a new spec: real work every time
				b.StartTimer()
				start := time.Now()
				w := work.New(work.Config{Name: "bench", Concurrency: n, Batch: n, Lease: time.Minute, MaxPixels: 50_000_000,
					Wait: 10 * time.Second, Poll: 50 * time.Millisecond}, c.images, c.queue, log, nil)
				if err := w.Run(b.Context()); err != nil {
					b.Fatal(err)
				}
				took += time.Since(start)
				if s := w.Stats(); s.Done != int64(len(ids)) {
					b.Fatalf("batch %s: %+v", batch, s)
				}
				tasks += len(ids)
			}
			b.ReportMetric(float64(tasks)/took.Seconds(), "tasks/s")
		})
	}
}
