// Command worker reprocesses photos in bulk: it claims tasks from
// imageproc's queue, runs the shared pipeline and uploads the variants. It
// runs as a Kubernetes Job and exits when the work is done.
//
//	worker [run]      work through the queue (or, in an Indexed Job, this
//	                  pod's shard of it) until nothing is pending or leased
//	worker maintain   the CronJob: queue missing thumbnails, expire old
//	                  variants, remove orphaned blobs, then work the queue
//
// Exit codes are chosen for the Job controller: 0 when the work is done;
// 143 (128 + SIGTERM) when the pod was stopped first, after releasing its
// unfinished tasks, so the Job starts another pod for the rest (in an
// Indexed Job, for the same index; a drain's eviction is not counted
// against backoffLimit, the podFailurePolicy ignores it); 1 when imageproc
// stayed unreachable, which a new pod may fix (counted against
// backoffLimit); 2 for a configuration error, which no retry fixes (the
// Job's podFailurePolicy fails the Job at once).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/grpcclient"
	"github.com/kubelab/kubelab/services/platform/grpcmetrics"
	"github.com/kubelab/kubelab/services/platform/lifecycle"
	"github.com/kubelab/kubelab/services/platform/telemetry"
	"github.com/kubelab/kubelab/services/platform/tracing"
	"github.com/kubelab/kubelab/services/worker/internal/maintain"
	"github.com/kubelab/kubelab/services/worker/internal/work"
)

type settings struct {
	Imageproc   string        `envconfig:"IMAGEPROC_ADDR" default:"dns:///imageproc-headless:50051"`
	Balancing   string        `envconfig:"IMAGEPROC_BALANCING" default:"round_robin"`
	Wait        time.Duration `envconfig:"IMAGEPROC_WAIT" default:"60s"`
	Concurrency int           `envconfig:"WORKER_CONCURRENCY" default:"0"`
	Batch       int           `envconfig:"CLAIM_BATCH" default:"8"`
	Lease       time.Duration `envconfig:"LEASE" default:"30s"`
	MaxPixels   int64         `envconfig:"MAX_PIXELS" default:"50000000"`
	Finish      time.Duration `envconfig:"FINISH_TIMEOUT" default:"20s"`
	Poll        time.Duration `envconfig:"POLL_INTERVAL" default:"2s"`
	Progress    time.Duration `envconfig:"PROGRESS_INTERVAL" default:"5s"`
	MetricsAddr string        `envconfig:"METRICS_ADDR" default:":9090"`
	LogLevel    string        `envconfig:"LOG_LEVEL" default:"info"`

	// A failed task waits RETRY_BACKOFF, doubling per attempt up to
	// RETRY_BACKOFF_MAX, with jitter, before it may be claimed again.
	RetryBackoff    time.Duration `envconfig:"RETRY_BACKOFF" default:"10s"`
	RetryBackoffMax time.Duration `envconfig:"RETRY_BACKOFF_MAX" default:"5m"`

	// An Indexed Job sets JOB_COMPLETION_INDEX in each pod; the manifest
	// sets SHARD_COUNT to the Job's completions.
	ShardIndex int `envconfig:"JOB_COMPLETION_INDEX" default:"0"`
	ShardCount int `envconfig:"SHARD_COUNT" default:"0"`

	// maintain only
	ThumbnailSize int           `envconfig:"THUMBNAIL_SIZE" default:"256"`
	VariantMaxAge time.Duration `envconfig:"VARIANT_MAX_AGE" default:"720h"`
	BlobMinAge    time.Duration `envconfig:"BLOB_MIN_AGE" default:"1h"`
	DryRun        bool          `envconfig:"DRY_RUN" default:"false"`
}

func (s *settings) Validate() error {
	switch {
	case s.Concurrency < 0 || s.Concurrency > 256:
		return errors.New("WORKER_CONCURRENCY must be 0 (one per CPU) to 256")
	case s.Batch < 1 || s.Batch > 100:
		return errors.New("CLAIM_BATCH must be 1 to 100")
	case s.Lease < 3*time.Second || s.Lease > time.Hour:
		return errors.New("LEASE must be 3s to 1h")
	case s.ShardCount < 0 || s.ShardIndex < 0 || (s.ShardCount > 0 && s.ShardIndex >= s.ShardCount):
		return fmt.Errorf("JOB_COMPLETION_INDEX=%d must be below SHARD_COUNT=%d", s.ShardIndex, s.ShardCount)
	case s.ShardCount == 0 && s.ShardIndex > 0:
		return errors.New("JOB_COMPLETION_INDEX is set but SHARD_COUNT is not: set SHARD_COUNT to the Job's completions")
	case s.Wait <= 0 || s.Finish < 0 || s.Poll <= 0:
		return errors.New("IMAGEPROC_WAIT and POLL_INTERVAL must be positive, FINISH_TIMEOUT not negative")
	case s.RetryBackoff < 0 || s.RetryBackoffMax < s.RetryBackoff || s.RetryBackoffMax > 24*time.Hour:
		return errors.New("RETRY_BACKOFF must not be negative, and RETRY_BACKOFF_MAX must be from RETRY_BACKOFF to 24h")
	case s.BlobMinAge < time.Minute:
		return errors.New("BLOB_MIN_AGE must be at least 1m")
	case s.VariantMaxAge < 0:
		return errors.New("VARIANT_MAX_AGE must not be negative")
	}
	return nil
}

// Exit codes, see the package comment.
const (
	exitRetry   = 1
	exitConfig  = lifecycle.ExitConfig
	exitStopped = 128 + 15
)

func main() {
	cmd := "run"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	var cfg settings
	ctx, stop, proc := lifecycle.Boot("worker", &cfg, &cfg.LogLevel)
	defer stop()
	info, log := proc.Info, proc.Log
	if cmd != "run" && cmd != "maintain" {
		log.Error("unknown command; want run or maintain", "command", cmd)
		os.Exit(exitConfig)
	}
	err := run(ctx, cmd, cfg, info, log)
	switch {
	case err == nil:
		return
	case errors.Is(err, work.ErrStopped):
		// Exiting 0 would tell the Job this pod's share is done: an
		// Indexed Job would never run this index again.
		log.Info("stopped before the work was done; the Job starts a new pod for the rest")
		os.Exit(exitStopped)
	case errors.Is(err, work.ErrUnreachable) || isTransient(err):
		log.Error("giving up for now; the Job will retry in a new pod", "err", err)
		os.Exit(exitRetry)
	default:
		log.Error("exiting", "err", err)
		os.Exit(exitConfig)
	}
}

// isTransient: imageproc or its database briefly away (status.Code sees
// through the wrapping).
func isTransient(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

func run(ctx context.Context, cmd string, cfg settings, info build.Info, log *slog.Logger) error {
	shutdownTracing, err := tracing.Setup(ctx, info)
	if err != nil {
		return err
	}
	// A Job's pod exits when the work is done: the last tasks' spans are
	// flushed first.
	defer shutdownTracing(context.WithoutCancel(ctx)) //nolint:errcheck // best effort at exit

	metrics := telemetry.NewMetrics(info)
	conn, err := grpcclient.Dial(grpcclient.Options{Target: cfg.Imageproc, Balancing: cfg.Balancing,
		HealthService: "imageproc.v1.QueueService"}, grpcmetrics.New(metrics.Registry).DialOptions()...)
	if err != nil {
		return fmt.Errorf("imageproc (IMAGEPROC_ADDR, IMAGEPROC_BALANCING): %w", err)
	}
	defer conn.Close()
	images, queue := imageprocv1.NewImageServiceClient(conn), imageprocv1.NewQueueServiceClient(conn)

	if cfg.MetricsAddr != "" {
		lis, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen on METRICS_ADDR=%s: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics.Handler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: telemetry.ErrorLog(log, "server", "metrics")}
		go func() { _ = srv.Serve(lis) }()
		defer srv.Close()
	}

	if cmd == "maintain" {
		mctx, cancel := context.WithTimeout(ctx, cfg.Wait)
		report, err := maintain.Run(mctx, maintain.Config{ThumbnailSize: cfg.ThumbnailSize, VariantMaxAge: cfg.VariantMaxAge,
			BlobMinAge: cfg.BlobMinAge, DryRun: cfg.DryRun}, images, queue, log)
		cancel()
		if err != nil {
			return err
		}
		log.Info("maintenance done; now working the queue", "report", report)
	}

	concurrency := cfg.Concurrency
	if concurrency == 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	w := work.New(work.Config{
		Name: info.Instance, Concurrency: concurrency, Batch: cfg.Batch, Lease: cfg.Lease,
		ShardIndex: cfg.ShardIndex, ShardCount: cfg.ShardCount, MaxPixels: cfg.MaxPixels,
		Wait: cfg.Wait, Finish: cfg.Finish, Poll: cfg.Poll, Progress: cfg.Progress,
		RetryBackoff: cfg.RetryBackoff, RetryBackoffMax: cfg.RetryBackoffMax,
	}, images, queue, log, work.NewMetrics(metrics.Registry))
	log.Info("working", "imageproc", cfg.Imageproc, "concurrency", concurrency, "shard", cfg.ShardIndex, "shards", cfg.ShardCount)
	return w.Run(ctx)
}
