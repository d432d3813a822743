package server_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

func TestCropOutsideTheImageIsTheClientsError(t *testing.T) {
	e := start(t, defaultLimits)
	c := ctx(t)
	img, err := e.upload(c, "small.jpg", pipelinetest.JPEG(100, 80, 3))
	if err != nil {
		t.Fatal(err)
	}
	crop := []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Crop{Crop: &imageprocv1.Crop{X: 50, Y: 50, Width: 100, Height: 100}}}}
	_, err = e.images.Transform(c, &imageprocv1.TransformRequest{ImageId: img.GetId(), Operations: crop})
	// Not Unavailable: a client would retry it, and get the same answer.
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("crop outside the image: %v, want InvalidArgument saying why", err)
	}
}

func TestFailedTaskWaitsItsRetryAfter(t *testing.T) {
	e := start(t, defaultLimits)
	c := ctx(t)
	if _, err := e.upload(c, "r.jpg", pipelinetest.JPEG(100, 80, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.queue.SubmitBatch(c, &imageprocv1.SubmitBatchRequest{Operations: thumb(64)}); err != nil {
		t.Fatal(err)
	}
	lease := durationpb.New(time.Minute)
	claim, err := e.queue.ClaimTasks(c, &imageprocv1.ClaimTasksRequest{Worker: "w", MaxTasks: 1, Lease: lease})
	if err != nil || len(claim.GetTasks()) != 1 {
		t.Fatalf("claim = %v, %v", claim, err)
	}
	id := claim.GetTasks()[0].GetId()
	for _, bad := range []time.Duration{-time.Second, 25 * time.Hour} {
		_, err := e.queue.FailTask(c, &imageprocv1.FailTaskRequest{TaskId: id, Worker: "w", Error: "x", RetryAfter: durationpb.New(bad)})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("retry_after %v: %v, want InvalidArgument", bad, err)
		}
	}
	failed, err := e.queue.FailTask(c, &imageprocv1.FailTaskRequest{TaskId: id, Worker: "w", Error: "disk full",
		RetryAfter: durationpb.New(time.Hour)})
	if err != nil || failed.GetState() != imageprocv1.TaskState_TASK_STATE_PENDING {
		t.Fatalf("fail = %v, %v", failed, err)
	}
	again, err := e.queue.ClaimTasks(c, &imageprocv1.ClaimTasksRequest{Worker: "w2", MaxTasks: 1, Lease: lease})
	if err != nil || len(again.GetTasks()) != 0 || again.GetOpenTasks() != 1 {
		t.Fatalf("claim within the retry time = %v, %v; want no task and one open", again, err)
	}
}

func TestQueueMissingVariants(t *testing.T) {
	e := start(t, defaultLimits)
	c := ctx(t)
	var ids []string
	for i := range 3 {
		img, err := e.upload(c, "m.jpg", pipelinetest.JPEG(120, 90, uint64(i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, img.GetId())
	}
	if _, err := e.images.Transform(c, &imageprocv1.TransformRequest{ImageId: ids[0], Operations: thumb(64)}); err != nil {
		t.Fatal(err)
	}
	dry, err := e.queue.QueueMissingVariants(c, &imageprocv1.QueueMissingVariantsRequest{Operations: thumb(64), DryRun: true})
	if err != nil || dry.GetMissing() != 2 || dry.GetBatch() != nil {
		t.Fatalf("dry run = %v, %v; want 2 missing and no batch", dry, err)
	}
	queued, err := e.queue.QueueMissingVariants(c, &imageprocv1.QueueMissingVariantsRequest{Operations: thumb(64)})
	if err != nil || queued.GetMissing() != 2 || queued.GetBatch().GetTotal() != 2 || queued.GetBatch().GetSpec() != "thumbnail(64)|format(jpeg,85)" {
		t.Fatalf("queue = %v, %v; want a batch of 2", queued, err)
	}
	// Asked again before any worker ran: the two are queued already.
	again, err := e.queue.QueueMissingVariants(c, &imageprocv1.QueueMissingVariantsRequest{Operations: thumb(64)})
	if err != nil || again.GetMissing() != 0 || again.GetBatch() != nil {
		t.Fatalf("second queue = %v, %v; want nothing", again, err)
	}
	claim, err := e.queue.ClaimTasks(c, &imageprocv1.ClaimTasksRequest{Worker: "w", MaxTasks: 10, Lease: durationpb.New(time.Minute)})
	if err != nil || len(claim.GetTasks()) != 2 {
		t.Fatalf("claim = %v, %v", claim, err)
	}
	for _, task := range claim.GetTasks() {
		if task.GetImageId() == ids[0] {
			t.Fatalf("queued the photo that has its thumbnail: %v", task)
		}
	}
	if _, err := e.queue.QueueMissingVariants(c, &imageprocv1.QueueMissingVariantsRequest{Operations: thumb(0)}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad operations: %v, want InvalidArgument", err)
	}
}

func TestSubmitBatchLimit(t *testing.T) {
	e := start(t, defaultLimits)
	ids := make([]string, int(imageprocv1.Limit_LIMIT_MAX_BATCH_IMAGES)+1)
	for i := range ids {
		ids[i] = "x"
	}
	_, err := e.queue.SubmitBatch(ctx(t), &imageprocv1.SubmitBatchRequest{ImageIds: ids, Operations: thumb(64)})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "at most 10000") {
		t.Fatalf("a batch over the limit: %v", err)
	}
}
