// Package work is the worker's loop: claim tasks from imageproc's queue
// with a lease, keep the lease alive while working, download the photo, run
// the shared pipeline, upload the variant, complete the task.
//
// Nothing here is done twice in effect: a variant is keyed by image and
// canonical spec, so a task redone after a crash stores nothing new, and
// completing a task needs the lease, which only one worker holds.
package work

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/pipeline"
)

// Config is how a worker claims and works.
type Config struct {
	// Name owns the leases: the pod name, unique among workers.
	Name string
	// Concurrency is how many tasks run at once; Batch bounds one claim.
	Concurrency, Batch int
	Lease              time.Duration
	// ShardIndex of ShardCount (0: no sharding) selects an Indexed Job
	// pod's share of the queue.
	ShardIndex, ShardCount int
	MaxPixels              int64
	// Wait bounds how long imageproc may stay unreachable before Run
	// gives up with ErrUnreachable.
	Wait time.Duration
	// Finish bounds how long tasks in progress may continue after the
	// stop; then they are cancelled and released.
	Finish time.Duration
	// Poll is how often to look again while other workers hold the last
	// tasks (their leases may expire and need redoing).
	Poll time.Duration
	// Progress is the interval of the progress log line.
	Progress time.Duration
	// RetryBackoff is how long a task that failed its first attempt waits
	// before any worker may claim it again; each further attempt doubles
	// it, up to RetryBackoffMax. Zero retries at once.
	RetryBackoff, RetryBackoffMax time.Duration
}

// retryAfter is the wait before attempt+1 of a task that failed: the
// exponential backoff for attempt, drawn at random from the upper half of
// it, so that tasks failing together (every task while the disk is full)
// do not come back together, and never less than half of it, so a fault
// that repeats is never retried in a tight loop.
func (c Config) retryAfter(attempt int32) time.Duration {
	d := c.RetryBackoff
	for i := int32(1); i < attempt && d < c.RetryBackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.RetryBackoffMax)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// ErrUnreachable means imageproc did not answer for Config.Wait: a failure
// a retry (a new pod, after backoff) can fix.
var ErrUnreachable = errors.New("imageproc unreachable")

// Stats counts what a run did.
type Stats struct {
	Done     int64 `json:"done"`     // completed by this worker
	Failed   int64 `json:"failed"`   // failed for good (poison)
	Retried  int64 `json:"retried"`  // failed, to be tried again
	Released int64 `json:"released"` // given back unfinished (stop, imageproc trouble)
	Lost     int64 `json:"lost"`     // lease lost to another worker
}

// Worker runs tasks.
type Worker struct {
	cfg     Config
	images  imageprocv1.ImageServiceClient
	queue   imageprocv1.QueueServiceClient
	log     *slog.Logger
	metrics *Metrics
	tracer  trace.Tracer

	done, failed, retried, released, lost atomic.Int64
	open                                  atomic.Int64
}

// New returns a Worker. metrics may be nil.
func New(cfg Config, images imageprocv1.ImageServiceClient, queue imageprocv1.QueueServiceClient, log *slog.Logger, metrics *Metrics) *Worker {
	return &Worker{cfg: cfg, images: images, queue: queue, log: log, metrics: metrics,
		tracer: otel.Tracer("github.com/kubelab/kubelab/services/worker/internal/work")}
}

// Stats returns the counts so far.
func (w *Worker) Stats() Stats {
	return Stats{Done: w.done.Load(), Failed: w.failed.Load(), Retried: w.retried.Load(), Released: w.released.Load(), Lost: w.lost.Load()}
}

// Run works until the queue (or its shard) has nothing pending or leased,
// and returns nil, or until ctx ends. When ctx ends it claims nothing
// more, lets tasks in progress finish for up to Config.Finish, releases
// what is left and returns ErrStopped: the work is not done, and whoever
// runs workers must start another (in an Indexed Job, for this shard).
func (w *Worker) Run(ctx context.Context) error {
	// Tasks run on their own context, which outlives ctx by Finish.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopAfter := context.AfterFunc(ctx, func() {
		w.log.Info("stop requested: claiming no more; finishing tasks in progress", "finish_within", w.cfg.Finish.String())
		time.AfterFunc(w.cfg.Finish, cancelWork)
	})
	defer stopAfter()

	tasks := make(chan leased)
	free := make(chan struct{}, w.cfg.Concurrency) // one token per idle slot
	for range w.cfg.Concurrency {
		free <- struct{}{}
	}
	var slots sync.WaitGroup
	for range w.cfg.Concurrency {
		slots.Go(func() {
			for t := range tasks {
				w.process(workCtx, t)
				free <- struct{}{}
			}
		})
	}
	started := time.Now()
	progressDone := make(chan struct{})
	go w.reportProgress(progressDone)

	err := w.claimLoop(ctx, tasks, free)
	close(tasks)
	slots.Wait()
	close(progressDone)
	w.logProgress("finished", float64(w.done.Load())/time.Since(started).Seconds())
	return err
}

// leased is a claimed task and when its lease began at the latest by this
// worker's clock: the claim was sent then, so the server cannot have
// started the lease before.
type leased struct {
	*imageprocv1.Task
	since time.Time
}

func (w *Worker) claimLoop(ctx context.Context, tasks chan<- leased, free chan struct{}) error {
	for {
		// Claim only what idle slots can start now: a claimed task's lease
		// is ticking, and it should not wait behind another.
		n := 0
		select {
		case <-free:
			n = 1
		case <-ctx.Done():
			return ErrStopped
		}
	more:
		for n < w.cfg.Batch {
			select {
			case <-free:
				n++
			default:
				break more
			}
		}
		resp, sent, err := w.claim(ctx, n)
		if errors.Is(err, ErrStopped) {
			return err
		}
		if err != nil {
			return err
		}
		claimed := resp.GetTasks()
		w.open.Store(int64(resp.GetOpenTasks()))
		w.metrics.setOpen(resp.GetOpenTasks())
		for range n - len(claimed) {
			free <- struct{}{}
		}
		for _, t := range claimed {
			tasks <- leased{Task: t, since: sent}
		}
		if len(claimed) > 0 {
			continue
		}
		if resp.GetOpenTasks() == 0 {
			return nil // nothing pending, nothing leased: the work is done
		}
		// Other workers (or our own slots) hold the remaining leases. Wait:
		// if one of them died, its lease expires and this worker redoes it.
		select {
		case <-time.After(w.cfg.Poll):
		case <-ctx.Done():
			return ErrStopped
		}
	}
}

// claim asks for up to n tasks, retrying while imageproc is unreachable,
// for at most Config.Wait. It returns when the successful claim was sent.
func (w *Worker) claim(ctx context.Context, n int) (*imageprocv1.ClaimTasksResponse, time.Time, error) {
	req := &imageprocv1.ClaimTasksRequest{Worker: w.cfg.Name, MaxTasks: int32(n), Lease: durationpb.New(w.cfg.Lease),
		ShardIndex: int32(w.cfg.ShardIndex), ShardCount: int32(w.cfg.ShardCount)}
	deadline := time.Now().Add(w.cfg.Wait)
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		sent := time.Now()
		// A stop does not cancel a claim on the wire: imageproc may have
		// leased the tasks already, and an answer dropped would leave them
		// leased until the lease runs out. The claim is awaited (it takes
		// milliseconds) and what it leased is given back below.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		resp, err := w.queue.ClaimTasks(cctx, req)
		cancel()
		if ctx.Err() != nil {
			// Stopped while claiming: take no more work, and give back
			// what this claim leased rather than leave it to expire.
			w.releaseAll(resp.GetTasks())
			return nil, sent, ErrStopped
		}
		if err == nil {
			return resp, sent, nil
		}
		if !transient(err) {
			return nil, sent, fmt.Errorf("claim tasks: %w", err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, sent, fmt.Errorf("%w for %v (%d attempts): %w", ErrUnreachable, w.cfg.Wait, attempt, err)
		}
		w.log.Warn("claim failed; retrying", "attempt", attempt, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (w *Worker) releaseAll(tasks []*imageprocv1.Task) {
	for _, t := range tasks {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := w.queue.ReleaseTask(ctx, &imageprocv1.ReleaseTaskRequest{TaskId: t.GetId(), Worker: w.cfg.Name})
		cancel()
		if err != nil {
			w.log.Warn("release failed; the lease will expire", "task", t.GetId(), "err", err)
		}
	}
}

// ErrStopped: the run was asked to stop before its work was done, and
// gave back the tasks it held.
var ErrStopped = errors.New("stopped before the work was done")

// transient errors of a claim are imageproc (or its database) being
// briefly away.
func transient(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// errLeaseLost: another worker owns the task now.
var errLeaseLost = errors.New("lease lost")

// failedAttempt is a failure that uses up one of the task's attempts: one
// that could repeat on retry (a photo the pipeline rejects, a deleted
// photo, a full disk, a bug in imageproc). The task is retried after a
// backoff, and after MAX_ATTEMPTS it is failed for good.
type failedAttempt struct{ err error }

func (e failedAttempt) Error() string { return e.err.Error() }
func (e failedAttempt) Unwrap() error { return e.err }

func (w *Worker) process(ctx context.Context, t leased) {
	start := time.Now()
	ctx, span := w.startSpan(ctx, t.Task)
	defer span.End()
	log := w.log.With("task", t.GetId(), "image", t.GetImageId(), "spec", t.GetSpec(), "attempt", t.GetAttempts())
	taskCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	renewing := make(chan struct{})
	go func() { defer close(renewing); w.renew(taskCtx, t, cancel) }()

	existed, err := w.execute(taskCtx, t)
	if cause := context.Cause(taskCtx); errors.Is(cause, errLeaseLost) {
		err = errLeaseLost
	}
	cancel(nil)
	<-renewing

	// Finishing calls use a fresh context: the task's may be cancelled.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer fcancel()
	var failed failedAttempt
	if err != nil {
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, err.Error())
	}
	switch {
	case err == nil:
		_, cerr := w.queue.CompleteTask(fctx, &imageprocv1.CompleteTaskRequest{TaskId: t.GetId(), Worker: w.cfg.Name})
		switch {
		case cerr == nil:
			w.count(&w.done, "done", start)
			log.Debug("task done", "variant_existed", existed, "seconds", time.Since(start).Seconds())
		case status.Code(cerr) == codes.FailedPrecondition:
			// Our lease ran out and another worker has it; the variant
			// is stored once either way.
			w.count(&w.lost, "lost", start)
			log.Warn("lease lost before completing; another worker will complete it", "err", cerr)
		default:
			// Unknown outcome: the lease will expire and the task be
			// redone, harmlessly (the variant exists).
			w.count(&w.released, "released", start)
			log.Warn("complete failed; the lease will expire", "err", cerr)
		}
	case errors.Is(err, errLeaseLost):
		w.count(&w.lost, "lost", start)
		log.Warn("lease lost while working; abandoning the task")
	case errors.As(err, &failed):
		retry := w.cfg.retryAfter(t.GetAttempts())
		resp, ferr := w.queue.FailTask(fctx, &imageprocv1.FailTaskRequest{TaskId: t.GetId(), Worker: w.cfg.Name, Error: err.Error(),
			RetryAfter: durationpb.New(retry)})
		if ferr != nil {
			w.count(&w.released, "released", start)
			log.Warn("recording the failure failed; the lease will expire", "err", ferr, "task_err", err)
			return
		}
		if resp.GetState() == imageprocv1.TaskState_TASK_STATE_FAILED {
			w.count(&w.failed, "failed", start)
			log.Error("task failed for good", "err", err)
		} else {
			w.count(&w.retried, "retried", start)
			log.Warn("task failed; it will be retried", "err", err, "retry_after", retry.Round(time.Millisecond).String())
		}
	default:
		// Stopped, or imageproc briefly away: give it back without using
		// up an attempt.
		if _, rerr := w.queue.ReleaseTask(fctx, &imageprocv1.ReleaseTaskRequest{TaskId: t.GetId(), Worker: w.cfg.Name}); rerr != nil {
			log.Warn("release failed; the lease will expire", "err", rerr)
		}
		w.count(&w.released, "released", start)
		log.Info("task released", "err", err)
	}
}

// startSpan starts the task's trace: a task is work of its own, done
// minutes or hours after the request that queued it, so it is a new trace
// (a span as long as a batch would be useless), linked to the batch's.
// Every call made for the task (download, upload, lease renewals,
// completion) is a child of this span.
func (w *Worker) startSpan(ctx context.Context, t *imageprocv1.Task) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingOperationTypeProcess, semconv.MessagingOperationName("process"), semconv.MessagingMessageID(t.GetId()),
			attribute.String("kubelab.batch.id", t.GetBatchId()), attribute.String("kubelab.image.id", t.GetImageId()),
			attribute.String("kubelab.variant.spec", t.GetSpec()), attribute.Int("kubelab.task.attempt", int(t.GetAttempts())),
		),
	}
	if batch := batchSpanContext(t); batch.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: batch}))
	}
	return w.tracer.Start(ctx, "process task", opts...)
}

func (w *Worker) count(c *atomic.Int64, outcome string, start time.Time) {
	c.Add(1)
	w.metrics.observe(outcome, time.Since(start))
}

// renew extends the lease every third of its length until ctx ends. The
// task is cancelled with errLeaseLost as soon as the lease is lost: when
// imageproc says another worker holds it, and also when no renewal got
// through before it ran out (imageproc unreachable), because by then
// another worker may have claimed the task and be doing it too.
func (w *Worker) renew(ctx context.Context, t leased, cancel context.CancelCauseFunc) {
	// Ours until heldUntil at least, by this worker's clock: a lease is
	// never started before the request that started or renewed it was sent.
	heldUntil := t.since.Add(w.cfg.Lease)
	next := t.since.Add(w.cfg.Lease / 3)
	for {
		wait := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-wait.C:
		}
		if !time.Now().Before(heldUntil) {
			w.log.Warn("lease ran out with no renewal getting through; stopping the task", "task", t.GetId())
			cancel(errLeaseLost)
			return
		}
		sent := time.Now()
		rctx, rcancel := context.WithDeadline(ctx, earlier(sent.Add(w.cfg.Lease/3), heldUntil))
		_, err := w.queue.RenewLease(rctx, &imageprocv1.RenewLeaseRequest{TaskId: t.GetId(), Worker: w.cfg.Name, Lease: durationpb.New(w.cfg.Lease)})
		rcancel()
		switch {
		case err == nil:
			heldUntil = sent.Add(w.cfg.Lease)
		case status.Code(err) == codes.FailedPrecondition:
			cancel(errLeaseLost)
			return
		case ctx.Err() != nil:
			return
		default:
			w.log.Warn("lease renewal failed; retrying at the next tick", "task", t.GetId(), "err", err)
		}
		next = earlier(sent.Add(w.cfg.Lease/3), heldUntil)
	}
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// execute makes the variant and uploads it; existed reports that imageproc
// already had it (the task was redone).
func (w *Worker) execute(ctx context.Context, t leased) (existed bool, err error) {
	spec, err := pipeline.ParseSpec(t.GetSpec())
	if err != nil {
		return false, failedAttempt{err}
	}
	src, err := w.download(ctx, t.GetImageId())
	if err != nil {
		return false, err
	}
	var out bytes.Buffer
	if _, err := pipeline.Run(ctx, &out, bytes.NewReader(src), spec, pipeline.Limits{MaxPixels: w.cfg.MaxPixels}); err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err() // stopped or lease lost: not the photo's fault
		}
		return false, failedAttempt{fmt.Errorf("pipeline: %w", err)}
	}
	if err := ctx.Err(); err != nil {
		return false, err // the lease is gone: another worker may be uploading
	}
	return w.uploadVariant(ctx, t.Task, out.Bytes())
}

// maxOriginal bounds what a download may hold in memory.
const maxOriginal = 512 << 20

func (w *Worker) download(ctx context.Context, imageID string) ([]byte, error) {
	stream, err := w.images.Download(ctx, &imageprocv1.DownloadRequest{ImageId: imageID})
	if err != nil {
		return nil, classify("download", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, classify("download", err)
	}
	size := first.GetInfo().GetSizeBytes()
	if size <= 0 || size > maxOriginal {
		return nil, failedAttempt{fmt.Errorf("download: size %d out of range", size)}
	}
	buf := make([]byte, 0, size)
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, classify("download", err)
		}
		buf = append(buf, msg.GetChunk()...)
	}
	if int64(len(buf)) != size {
		return nil, failedAttempt{fmt.Errorf("download: got %d of %d bytes", len(buf), size)}
	}
	return buf, nil
}

func (w *Worker) uploadVariant(ctx context.Context, t *imageprocv1.Task, data []byte) (bool, error) {
	stream, err := w.images.UploadVariant(ctx)
	if err != nil {
		return false, classify("upload variant", err)
	}
	send := func(r *imageprocv1.UploadVariantRequest) error {
		if err := stream.Send(r); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		return nil // on io.EOF the real status comes from CloseAndRecv
	}
	if err := send(&imageprocv1.UploadVariantRequest{Data: &imageprocv1.UploadVariantRequest_Metadata{
		Metadata: &imageprocv1.UploadVariantMetadata{ImageId: t.GetImageId(), Spec: t.GetSpec()}}}); err != nil {
		return false, classify("upload variant", err)
	}
	const chunk = 64 << 10
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		if err := send(&imageprocv1.UploadVariantRequest{Data: &imageprocv1.UploadVariantRequest_Chunk{Chunk: data[off:end]}}); err != nil {
			return false, classify("upload variant", err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return false, classify("upload variant", err)
	}
	return resp.GetExisted(), nil
}

// classify sorts imageproc's answers. Only a passing outage (imageproc or
// its database briefly away) or this task being stopped gives the task back
// without counting an attempt. Every other answer uses one up: a deleted
// photo, a rejected variant, and Internal (a full disk, a constraint, a
// bug), which would otherwise be claimed again at once, forever.
func classify(what string, err error) error {
	err = fmt.Errorf("%s: %w", what, err)
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		return err
	}
	return failedAttempt{err}
}

func (w *Worker) reportProgress(done <-chan struct{}) {
	if w.cfg.Progress <= 0 {
		return
	}
	tick := time.NewTicker(w.cfg.Progress)
	defer tick.Stop()
	prevDone, prevAt := int64(0), time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			d := w.done.Load()
			w.logProgress("progress", float64(d-prevDone)/now.Sub(prevAt).Seconds())
			prevDone, prevAt = d, now
		}
	}
}

// logProgress writes the line a learner follows with `kubectl logs -f`:
// what this worker did, what the queue still holds, and the rate.
func (w *Worker) logProgress(msg string, rate float64) {
	s := w.Stats()
	w.log.Info(msg, "done", s.Done, "failed", s.Failed, "retried", s.Retried, "released", s.Released, "lost", s.Lost,
		"remaining", w.open.Load(), "tasks_per_s", float64(int(rate*10))/10)
}

// batchSpanContext is the span that queued t's batch, from the W3C
// traceparent imageproc stored with the batch; invalid when there was no
// trace then (or imageproc is older).
func batchSpanContext(t *imageprocv1.Task) trace.SpanContext {
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": t.GetBatchTraceparent()})
	return trace.SpanContextFromContext(ctx)
}
