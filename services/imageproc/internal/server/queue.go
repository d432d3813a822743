package server

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/internal/store"
)

// Queue implements imageproc.v1.QueueService.
type Queue struct {
	imageprocv1.UnimplementedQueueServiceServer
	*deps
}

// SubmitBatch queues a task per image.
func (q *Queue) SubmitBatch(ctx context.Context, req *imageprocv1.SubmitBatchRequest) (*imageprocv1.SubmitBatchResponse, error) {
	spec, err := specFromProto(req.GetOperations(), req.GetOutput())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if limit := int(imageprocv1.Limit_LIMIT_MAX_BATCH_IMAGES); len(req.GetImageIds()) > limit {
		return nil, status.Errorf(codes.InvalidArgument, "image_ids: at most %d per batch; for every photo, send none", limit)
	}
	b, err := q.store.CreateBatch(ctx, store.NewID(), spec.String(), req.GetImageIds())
	if err != nil {
		return nil, toStatus(ctx, q.log, "submit batch", err)
	}
	return &imageprocv1.SubmitBatchResponse{Batch: batchToProto(b)}, nil
}

// QueueMissingVariants queues the variant for every photo that lacks it, in
// one statement: the caller lists nothing, so no page or batch limit can
// stop it however large the gallery grows.
func (q *Queue) QueueMissingVariants(ctx context.Context, req *imageprocv1.QueueMissingVariantsRequest) (*imageprocv1.QueueMissingVariantsResponse, error) {
	spec, err := specFromProto(req.GetOperations(), req.GetOutput())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	id := store.NewID()
	n, err := q.store.QueueMissing(ctx, id, spec.String(), req.GetDryRun())
	if err != nil {
		return nil, toStatus(ctx, q.log, "queue missing variants", err)
	}
	resp := &imageprocv1.QueueMissingVariantsResponse{Missing: int32(n)}
	if n == 0 || req.GetDryRun() {
		return resp, nil
	}
	b, err := q.store.GetBatch(ctx, id)
	if err != nil {
		return nil, toStatus(ctx, q.log, "queue missing variants", err)
	}
	resp.Batch = batchToProto(b)
	return resp, nil
}

// GetBatch reports progress.
func (q *Queue) GetBatch(ctx context.Context, req *imageprocv1.GetBatchRequest) (*imageprocv1.GetBatchResponse, error) {
	b, err := q.store.GetBatch(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, q.log, "get batch", err)
	}
	return &imageprocv1.GetBatchResponse{Batch: batchToProto(b)}, nil
}

func leaseArg(d *durationpb.Duration) (time.Duration, error) {
	lease := d.AsDuration()
	if d == nil || lease < time.Second || lease > time.Hour {
		return 0, status.Error(codes.InvalidArgument, "lease: must be between 1s and 1h")
	}
	return lease, nil
}

func taskArgs(id, worker string) (int64, error) {
	if worker == "" {
		return 0, status.Error(codes.InvalidArgument, "worker: must be set")
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return 0, status.Errorf(codes.InvalidArgument, "task_id: %q is not a task ID", id)
	}
	return n, nil
}

// ClaimTasks leases tasks to a worker.
func (q *Queue) ClaimTasks(ctx context.Context, req *imageprocv1.ClaimTasksRequest) (*imageprocv1.ClaimTasksResponse, error) {
	if req.GetWorker() == "" {
		return nil, status.Error(codes.InvalidArgument, "worker: must be set")
	}
	if req.GetMaxTasks() < 1 || req.GetMaxTasks() > 100 {
		return nil, status.Error(codes.InvalidArgument, "max_tasks: must be 1..100")
	}
	lease, err := leaseArg(req.GetLease())
	if err != nil {
		return nil, err
	}
	if req.GetShardCount() < 0 || req.GetShardIndex() < 0 || (req.GetShardCount() > 0 && req.GetShardIndex() >= req.GetShardCount()) {
		return nil, status.Error(codes.InvalidArgument, "shard_index: must be 0..shard_count-1")
	}
	tasks, err := q.store.ClaimTasks(ctx, store.Claim{Worker: req.GetWorker(), Max: int(req.GetMaxTasks()), Lease: lease,
		ShardIndex: int(req.GetShardIndex()), ShardCount: int(req.GetShardCount())})
	if err != nil {
		return nil, toStatus(ctx, q.log, "claim tasks", err)
	}
	open, err := q.store.OpenTasks(ctx, int(req.GetShardIndex()), int(req.GetShardCount()))
	if err != nil {
		return nil, toStatus(ctx, q.log, "count open tasks", err)
	}
	resp := &imageprocv1.ClaimTasksResponse{OpenTasks: int32(open)}
	for _, t := range tasks {
		resp.Tasks = append(resp.Tasks, taskToProto(t))
	}
	return resp, nil
}

// RenewLease extends a held lease.
func (q *Queue) RenewLease(ctx context.Context, req *imageprocv1.RenewLeaseRequest) (*imageprocv1.RenewLeaseResponse, error) {
	id, err := taskArgs(req.GetTaskId(), req.GetWorker())
	if err != nil {
		return nil, err
	}
	lease, err := leaseArg(req.GetLease())
	if err != nil {
		return nil, err
	}
	until, err := q.store.RenewLease(ctx, id, req.GetWorker(), lease)
	if err != nil {
		return nil, toStatus(ctx, q.log, "renew lease", err)
	}
	return &imageprocv1.RenewLeaseResponse{LeaseExpireTime: timestamppb.New(until)}, nil
}

// CompleteTask marks a task done.
func (q *Queue) CompleteTask(ctx context.Context, req *imageprocv1.CompleteTaskRequest) (*imageprocv1.CompleteTaskResponse, error) {
	id, err := taskArgs(req.GetTaskId(), req.GetWorker())
	if err != nil {
		return nil, err
	}
	if err := q.store.CompleteTask(ctx, id, req.GetWorker()); err != nil {
		return nil, toStatus(ctx, q.log, "complete task", err)
	}
	return &imageprocv1.CompleteTaskResponse{}, nil
}

// FailTask records a failure.
func (q *Queue) FailTask(ctx context.Context, req *imageprocv1.FailTaskRequest) (*imageprocv1.FailTaskResponse, error) {
	id, err := taskArgs(req.GetTaskId(), req.GetWorker())
	if err != nil {
		return nil, err
	}
	msg := req.GetError()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	retryAfter := req.GetRetryAfter().AsDuration() // unset: 0, at once
	if retryAfter < 0 || retryAfter > 24*time.Hour {
		return nil, status.Error(codes.InvalidArgument, "retry_after: must be between 0 and 24h")
	}
	st, err := q.store.FailTask(ctx, id, req.GetWorker(), msg, retryAfter)
	if err != nil {
		return nil, toStatus(ctx, q.log, "fail task", err)
	}
	return &imageprocv1.FailTaskResponse{State: taskStates[st]}, nil
}

// ReleaseTask gives a task back.
func (q *Queue) ReleaseTask(ctx context.Context, req *imageprocv1.ReleaseTaskRequest) (*imageprocv1.ReleaseTaskResponse, error) {
	id, err := taskArgs(req.GetTaskId(), req.GetWorker())
	if err != nil {
		return nil, err
	}
	if err := q.store.ReleaseTask(ctx, id, req.GetWorker()); err != nil {
		return nil, toStatus(ctx, q.log, "release task", err)
	}
	return &imageprocv1.ReleaseTaskResponse{}, nil
}
