// Command imageproc is kubelab's image-processing backend: a gRPC server
// that owns the photos (on its volume, or in PostgreSQL with
// BLOB_STORE=postgres) and their metadata and work queue (in PostgreSQL,
// or an embedded SQLite file when DATABASE_URL is unset; the cluster images
// are built with -tags nosqlite, without it).
//
//	imageproc [serve]   run the servers (the container's default command)
//	imageproc migrate   apply database migrations, then exit (an initContainer)
//	imageproc health    exit 0 if the local server reports SERVING (an exec probe)
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kubelab/kubelab/services/imageproc/internal/blob"
	"github.com/kubelab/kubelab/services/imageproc/internal/blob/pgblob"
	"github.com/kubelab/kubelab/services/imageproc/internal/server"
	"github.com/kubelab/kubelab/services/imageproc/internal/store"
	"github.com/kubelab/kubelab/services/imageproc/pipeline"
	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/grpcmetrics"
	"github.com/kubelab/kubelab/services/platform/grpcserver"
	"github.com/kubelab/kubelab/services/platform/health"
	"github.com/kubelab/kubelab/services/platform/lifecycle"
	"github.com/kubelab/kubelab/services/platform/telemetry"
	"github.com/kubelab/kubelab/services/platform/tracing"
)

type settings struct {
	GRPCAddr    string `envconfig:"GRPC_ADDR" default:":50051"`
	AdminAddr   string `envconfig:"ADMIN_ADDR" default:":9090"`
	DataDir     string `envconfig:"DATA_DIR" default:"/data"`
	DatabaseURL string `envconfig:"DATABASE_URL"`
	// BlobStore is where photos and variants go: "dir", files under
	// DATA_DIR (a volume), or "postgres", the database of DATABASE_URL,
	// so that no replica needs a volume and each may run on any node.
	BlobStore string `envconfig:"BLOB_STORE" default:"dir"`
	// DatabaseWait bounds how long serve and migrate wait for the database
	// to come up (or, for serve, to be migrated) before giving up.
	DatabaseWait time.Duration `envconfig:"DATABASE_WAIT" default:"60s"`
	LogLevel     string        `envconfig:"LOG_LEVEL" default:"info"`

	MaxUploadBytes   int64         `envconfig:"MAX_UPLOAD_BYTES" default:"52428800"`
	MaxPixels        int64         `envconfig:"MAX_PIXELS" default:"50000000"`
	MaxAttempts      int           `envconfig:"MAX_ATTEMPTS" default:"3"`
	Transforms       int           `envconfig:"TRANSFORM_CONCURRENCY" default:"0"`
	MaxConnectionAge time.Duration `envconfig:"MAX_CONNECTION_AGE" default:"30s"`
	// MaxConnectionAgeGrace must cover the longest call a client makes;
	// unset, grpcserver.DefaultMaxConnectionAgeGrace.
	MaxConnectionAgeGrace time.Duration `envconfig:"MAX_CONNECTION_AGE_GRACE"`

	// MemoryLimit is the container's memory limit in bytes, from the
	// Downward API (resourceFieldRef limits.memory); unset, it is read from
	// the cgroup. Transforms share it (pipeline.MemoryBudget).
	MemoryLimit int64 `envconfig:"MEMORY_LIMIT"`

	lifecycle.Config
}

func (s *settings) Validate() error {
	switch {
	case s.DatabaseURL == "" && !store.Embedded:
		return errors.New("DATABASE_URL is unset, and this build has no embedded store " +
			"(built with -tags nosqlite, as the cluster images are): set DATABASE_URL to a PostgreSQL URL")
	case s.BlobStore != "dir" && s.BlobStore != "postgres":
		return fmt.Errorf("BLOB_STORE=%q: want dir (files under DATA_DIR) or postgres (in DATABASE_URL's database)", s.BlobStore)
	case s.BlobStore == "postgres" && s.DatabaseURL == "":
		return errors.New("BLOB_STORE=postgres keeps blobs in PostgreSQL, but DATABASE_URL is unset")
	case s.MaxUploadBytes <= 0:
		return errors.New("MAX_UPLOAD_BYTES must be positive")
	case s.BlobStore == "postgres" && s.MaxUploadBytes > pgblob.MaxSize:
		return fmt.Errorf("MAX_UPLOAD_BYTES must be at most %d with BLOB_STORE=postgres (a bytea's limit)", pgblob.MaxSize)
	case s.MaxPixels <= 0:
		return errors.New("MAX_PIXELS must be positive")
	case s.MaxAttempts <= 0:
		return errors.New("MAX_ATTEMPTS must be positive")
	case s.MemoryLimit < 0:
		return errors.New("MEMORY_LIMIT must not be negative")
	case s.DrainDelay < 0 || s.ShutdownTimeout <= 0:
		return errors.New("DRAIN_DELAY must not be negative and SHUTDOWN_TIMEOUT must be positive")
	}
	return nil
}

func main() {
	cmd := "serve"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	var cfg settings
	ctx, stop, proc := lifecycle.Boot("imageproc", &cfg, &cfg.LogLevel)
	defer stop()
	info, log := proc.Info, proc.Log

	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, cfg, info, log)
	case "migrate":
		err = migrate(ctx, cfg, log)
	case "health":
		err = probe(cfg.GRPCAddr)
	default:
		err = fmt.Errorf("unknown command %q (want serve, migrate or health)", cmd)
	}
	if err != nil {
		log.Error("exiting", "command", cmd, "err", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, cfg settings, info build.Info, log *slog.Logger) error {
	shutdownTracing, err := tracing.Setup(ctx, info)
	if err != nil {
		return err
	}
	defer shutdownTracing(context.WithoutCancel(ctx)) //nolint:errcheck // best effort at exit

	// Blobs first: what is wrong there shows at once, not after the wait
	// for the database.
	blobs, closeBlobs, err := openBlobs(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeBlobs()
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()

	metrics := telemetry.NewMetrics(info)
	checker := health.NewChecker(log, 2*time.Second, time.Second, "imageproc.v1.ImageService", "imageproc.v1.QueueService")
	checker.AddReadiness("database", st.Ping)

	rpcs := grpcmetrics.New(metrics.Registry)
	g := grpcserver.New(grpcserver.Options{Log: log, Metrics: rpcs, Health: checker, Instance: info.Instance, Version: info.Version,
		MaxConnectionAge: cfg.MaxConnectionAge, MaxConnectionAgeGrace: cfg.MaxConnectionAgeGrace})
	server.Register(g, log, st, blobs, server.Limits{MaxUploadBytes: cfg.MaxUploadBytes, MaxPixels: cfg.MaxPixels,
		Transforms: cfg.Transforms, MemoryLimit: memoryLimit(cfg, log)})
	// Every method's series exist from the start, at zero: a rate or an
	// error ratio then reads 0, not "no data", before the first call.
	rpcs.Server.InitializeMetrics(g)

	admin := http.NewServeMux()
	checker.Routes(admin)
	admin.Handle("GET /metrics", metrics.Handler())

	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen on GRPC_ADDR=%s: %w", cfg.GRPCAddr, err)
	}
	adminLis, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("listen on ADMIN_ADDR=%s: %w", cfg.AdminAddr, err)
	}
	r := lifecycle.New(log, checker, cfg.Config)
	r.GRPC(grpcLis, g)
	r.HTTP("admin", adminLis, &http.Server{Handler: metrics.Middleware(admin), ReadHeaderTimeout: 5 * time.Second})
	r.Go(func(ctx context.Context) error { checker.Run(ctx); return nil })
	return r.Run(ctx)
}

// memoryLimit is the container's memory limit, and tells the Go runtime to
// keep the heap under nine tenths of it (unless GOMEMLIMIT says otherwise):
// without a soft limit the heap may grow to twice what is live before a
// collection, and the kernel kills the container at its limit.
func memoryLimit(cfg settings, log *slog.Logger) int64 {
	limit, source := cfg.MemoryLimit, "MEMORY_LIMIT"
	if limit == 0 {
		limit, source = server.CgroupMemoryLimit(), "cgroup"
	}
	if limit == 0 {
		log.Info("no memory limit found: transforms are bounded by MAX_PIXELS and their work only")
		return 0
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(pipeline.SoftMemoryLimit(limit))
	}
	concurrency := cfg.Transforms
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	log.Info("transform memory budget", "memory_limit_bytes", limit, "from", source,
		"go_memory_limit_bytes", debug.SetMemoryLimit(-1), "per_transform_bytes", pipeline.MemoryBudget(limit, concurrency))
	return limit
}

// openStore picks PostgreSQL when DATABASE_URL is set, else the embedded
// SQLite file under DATA_DIR.
func openStore(ctx context.Context, cfg settings, log *slog.Logger) (store.Store, error) {
	if cfg.DatabaseURL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create DATA_DIR=%s: %w", cfg.DataDir, err)
		}
		path := filepath.Join(cfg.DataDir, "imageproc.db")
		log.Info("using the embedded store; set DATABASE_URL for PostgreSQL", "path", path)
		return store.OpenSQLite(ctx, path, cfg.MaxAttempts)
	}
	pg, err := store.OpenPostgres(ctx, cfg.DatabaseURL, cfg.MaxAttempts)
	if err != nil {
		return nil, err
	}
	// At start-up the database pod may still be coming up: wait a while,
	// then fail with the reason (unreachable, or not migrated).
	if err := waitFor(ctx, log, "database schema check", cfg.DatabaseWait, pg.CheckSchema); err != nil {
		pg.Close()
		return nil, err
	}
	return pg, nil
}

// openBlobs opens the blob store BLOB_STORE names. PostgreSQL's table comes
// from the migrations, which openStore checks.
func openBlobs(ctx context.Context, cfg settings, log *slog.Logger) (blob.Store, func(), error) {
	if cfg.BlobStore == "postgres" {
		// Checked now, or every upload would fail: under a read-only root
		// filesystem the temp dir is writable only if a volume is mounted.
		tmp := os.TempDir()
		f, err := os.CreateTemp(tmp, "imageproc-check-")
		if err != nil {
			return nil, nil, fmt.Errorf("BLOB_STORE=postgres stages uploads in %s (TMPDIR), which is not writable; mount an emptyDir there: %w", tmp, err)
		}
		_ = f.Close()
		_ = os.Remove(f.Name())
		pool, err := store.NewPool(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, nil, err
		}
		log.Info("blobs in PostgreSQL; uploads are staged in the temp dir", "tmp", tmp)
		return pgblob.New(pool, tmp), pool.Close, nil
	}
	dir, err := blob.Open(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		return nil, nil, fmt.Errorf("open blob dir under DATA_DIR=%s: %w", cfg.DataDir, err)
	}
	return dir, func() { _ = dir.Close() }, nil
}

// waitFor calls fn until it succeeds, ctx ends or window has passed, and
// returns fn's last error. Both the migrate initContainer and the server
// start while the database may still be starting; giving up at the first
// refused connection would only add a CrashLoopBackOff to the lesson.
func waitFor(ctx context.Context, log *slog.Logger, what string, window time.Duration, fn func(context.Context) error) error {
	deadline := time.Now().Add(window)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := fn(actx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		log.Warn(what+" failed; retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(2 * time.Second):
		}
	}
}

func migrate(ctx context.Context, cfg settings, log *slog.Logger) error {
	if cfg.DatabaseURL == "" {
		log.Info("DATABASE_URL is unset: the embedded store creates its schema itself; nothing to do")
		return nil
	}
	pg, err := store.OpenPostgres(ctx, cfg.DatabaseURL, cfg.MaxAttempts)
	if err != nil {
		return err
	}
	defer pg.Close()
	var applied []string
	err = waitFor(ctx, log, "migration", cfg.DatabaseWait, func(ctx context.Context) (err error) {
		applied, err = pg.Migrate(ctx)
		return err
	})
	if err != nil {
		return err
	}
	log.Info("migrations applied", "applied", applied)
	return nil
}

// probe asks the local gRPC health service, like a Kubernetes grpc probe;
// the exec-probe form for images without a shell.
func probe(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("GRPC_ADDR=%s: %w", addr, err)
	}
	conn, err := grpc.NewClient(net.JoinHostPort("127.0.0.1", port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health check: %s", resp.GetStatus())
	}
	fmt.Println("SERVING")
	return nil
}
