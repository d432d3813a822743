// Command frontend is kubelab's web UI and JSON API: it serves the pages a
// learner watches while scaling and rolling out, and calls imageproc over
// gRPC for everything about photos.
//
// It reads its settings from the environment (a ConfigMap's envFrom and a
// Secret's secretKeyRef), live settings from a mounted ConfigMap directory,
// the admin token from a mounted Secret directory, and its labels from a
// downwardAPI volume. The three directories are watched and re-read when
// kubelet swaps them, so edits apply without a restart.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/kubelab/kubelab/services/frontend/internal/auth"
	"github.com/kubelab/kubelab/services/frontend/internal/backend"
	"github.com/kubelab/kubelab/services/frontend/internal/demo"
	"github.com/kubelab/kubelab/services/frontend/internal/live"
	"github.com/kubelab/kubelab/services/frontend/internal/pod"
	"github.com/kubelab/kubelab/services/frontend/internal/web"
	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/config"
	"github.com/kubelab/kubelab/services/platform/grpcmetrics"
	"github.com/kubelab/kubelab/services/platform/health"
	"github.com/kubelab/kubelab/services/platform/lifecycle"
	"github.com/kubelab/kubelab/services/platform/telemetry"
	"github.com/kubelab/kubelab/services/platform/tracing"
)

type settings struct {
	HTTPAddr  string `envconfig:"HTTP_ADDR" default:":8080"`
	LogLevel  string `envconfig:"LOG_LEVEL" default:"info"`
	Imageproc string `envconfig:"IMAGEPROC_ADDR" default:"dns:///imageproc-headless:50051"`
	Balancing string `envconfig:"IMAGEPROC_BALANCING" default:"round_robin"`

	// MetricsAddr serves /metrics on a port of its own, which no Service
	// or Ingress routes to: Prometheus scrapes the pods directly. Empty
	// turns it off.
	MetricsAddr string `envconfig:"METRICS_ADDR" default:":9090"`

	// Deadlines for calls to imageproc: unary calls, and streams
	// (uploads, downloads, transforms of large photos).
	CallTimeout   time.Duration `envconfig:"IMAGEPROC_TIMEOUT" default:"5s"`
	StreamTimeout time.Duration `envconfig:"IMAGEPROC_STREAM_TIMEOUT" default:"2m"`
	// ReadyNeedsImageproc makes /readyz fail while imageproc is
	// unreachable. Off by default: readiness says whether this pod can
	// serve, and it can, with pages that explain the outage. On, an
	// imageproc outage (its database down, say) takes every frontend pod
	// out of the Service at once, and users get a connection error.
	ReadyNeedsImageproc bool `envconfig:"READY_NEEDS_IMAGEPROC" default:"false"`

	MaxUploadBytes int64 `envconfig:"MAX_UPLOAD_BYTES" default:"52428800"`
	// The slowest request body waited for (web.Pace): at least
	// UPLOAD_MIN_RATE bytes a second, measured over each window.
	UploadMinRate    int64         `envconfig:"UPLOAD_MIN_RATE" default:"1024"`
	UploadRateWindow time.Duration `envconfig:"UPLOAD_RATE_WINDOW" default:"10s"`
	// Mounted volumes; each is optional outside a cluster.
	ConfigDir  string `envconfig:"CONFIG_DIR"`
	SecretDir  string `envconfig:"SECRET_DIR"`
	PodInfoDir string `envconfig:"PODINFO_DIR"`
	StateDir   string `envconfig:"STATE_DIR"`
	// SessionKey signs admin login cookies; set it from a Secret so
	// sessions work on every replica. Unset, each process makes its own.
	SessionKey string `envconfig:"SESSION_KEY"`
	// LessonsURL is where the course (docs/lessons) is published: the
	// cluster panel links each of its parts to the lesson that explains
	// it. Empty, the panel links nothing.
	LessonsURL string `envconfig:"LESSONS_URL" default:"https://github.com/kubelab/kubelab/blob/main/docs/lessons"`
	// ClusterViewURL is the live view's sidecar (clusterview), which
	// /cluster/stream is relayed to; empty where the pod has none.
	ClusterViewURL string `envconfig:"CLUSTERVIEW_URL"`

	lifecycle.Config
}

func (s *settings) Validate() error {
	switch {
	case s.MaxUploadBytes <= 0:
		return errors.New("MAX_UPLOAD_BYTES must be positive")
	case s.UploadMinRate < 0 || s.UploadRateWindow <= 0:
		return errors.New("UPLOAD_MIN_RATE must not be negative and UPLOAD_RATE_WINDOW must be positive")
	case s.CallTimeout <= 0 || s.StreamTimeout <= 0:
		return errors.New("IMAGEPROC_TIMEOUT and IMAGEPROC_STREAM_TIMEOUT must be positive")
	case s.DrainDelay < 0 || s.ShutdownTimeout <= 0:
		return errors.New("DRAIN_DELAY must not be negative and SHUTDOWN_TIMEOUT must be positive")
	case s.SessionKey != "" && len(s.SessionKey) < 16:
		return errors.New("SESSION_KEY must be at least 16 characters")
	case s.LessonsURL != "" && !absoluteHTTP(s.LessonsURL):
		return fmt.Errorf("LESSONS_URL=%q must be an absolute http or https URL, or empty", s.LessonsURL)
	case s.ClusterViewURL != "" && !absoluteHTTP(s.ClusterViewURL):
		return fmt.Errorf("CLUSTERVIEW_URL=%q must be an absolute http URL, or empty", s.ClusterViewURL)
	}
	return nil
}

func absoluteHTTP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// adminTokenKey is the file (Secret key) holding the admin token.
const adminTokenKey = "admin-token"

func main() {
	var cfg settings
	ctx, stop, proc := lifecycle.Boot("frontend", &cfg, &cfg.LogLevel)
	defer stop()
	info, log := proc.Info, proc.Log
	if err := run(ctx, cfg, info, log); err != nil {
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg settings, info build.Info, log *slog.Logger) error {
	shutdownTracing, err := tracing.Setup(ctx, info)
	if err != nil {
		return err
	}
	defer shutdownTracing(context.WithoutCancel(ctx)) //nolint:errcheck // best effort at exit

	self := pod.FromEnv(info.Instance)
	if self.Starts, err = pod.CountStart(cfg.StateDir); err != nil {
		return err
	}
	vols, err := openVolumes(cfg, log)
	if err != nil {
		return err
	}

	metrics := telemetry.NewMetrics(info)
	client, err := backend.Dial(backend.Options{Target: cfg.Imageproc, Balancing: cfg.Balancing, Timeout: cfg.CallTimeout, StreamTimeout: cfg.StreamTimeout,
		Metrics: grpcmetrics.New(metrics.Registry)})
	if err != nil {
		return err
	}
	defer client.Close()

	checker := health.NewChecker(log, 2*time.Second, time.Second)
	if cfg.ReadyNeedsImageproc {
		checker.AddReadiness("imageproc", client.Check)
	}
	key, err := sessionKey(cfg.SessionKey)
	if err != nil {
		return err
	}
	var clusterView *url.URL
	if cfg.ClusterViewURL != "" {
		clusterView, _ = url.Parse(cfg.ClusterViewURL) // Validate parsed it
	}
	srv, err := web.New(web.Deps{
		Log: log, Build: info, Pod: self, Live: vols.current.Load, Backend: client, Health: checker, Metrics: metrics,
		Auth:        auth.New(func() string { return vols.secret().Get(adminTokenKey, "") }, key),
		Demo:        demo.New(log, checker.ForceUnready),
		Crash:       func() { os.Exit(3) },
		Started:     time.Now(),
		LessonsURL:  cfg.LessonsURL,
		Pace:        web.Pace{MinRate: cfg.UploadMinRate, Window: cfg.UploadRateWindow},
		ClusterView: clusterView,
	})
	if err != nil {
		return err
	}

	lis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR=%s: %w", cfg.HTTPAddr, err)
	}
	r := lifecycle.New(log, checker, cfg.Config)
	httpSrv := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 90 * time.Second}
	// Live views are streams that never end by themselves: without this
	// the graceful stop would wait for them until SHUTDOWN_TIMEOUT.
	// Their browsers reconnect, through the Service, to a pod that stays.
	httpSrv.RegisterOnShutdown(srv.StopStreams)
	r.HTTP("http", lis, httpSrv)
	if cfg.MetricsAddr != "" {
		metricsLis, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen on METRICS_ADDR=%s: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics.Handler())
		r.HTTP("metrics", metricsLis, &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second})
	}
	r.Go(func(ctx context.Context) error { checker.Run(ctx); return nil })
	for _, d := range vols.dirs {
		r.Go(d.Watch)
	}
	return r.Run(ctx)
}

// volumes are the watched directories and the view built from them.
type volumes struct {
	cfg                        settings
	log                        *slog.Logger
	configDir, secretDir, info *config.Dir
	dirs                       []*config.Dir
	current                    atomic.Pointer[web.Live]
}

func openVolumes(cfg settings, log *slog.Logger) (*volumes, error) {
	v := &volumes{cfg: cfg, log: log}
	for _, d := range []struct {
		path, env string
		dst       **config.Dir
	}{{cfg.ConfigDir, "CONFIG_DIR", &v.configDir}, {cfg.SecretDir, "SECRET_DIR", &v.secretDir}, {cfg.PodInfoDir, "PODINFO_DIR", &v.info}} {
		if d.path == "" {
			continue
		}
		dir, err := config.OpenDir(d.path, log)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", d.env, d.path, err)
		}
		*d.dst = dir
		v.dirs = append(v.dirs, dir)
		dir.OnChange(func(config.Snapshot) { v.rebuild() })
	}
	v.rebuild()
	return v, nil
}

func snapshot(d *config.Dir) config.Snapshot {
	if d == nil {
		return config.Snapshot{}
	}
	return d.Snapshot()
}

func (v *volumes) secret() config.Snapshot { return snapshot(v.secretDir) }

// rebuild makes a new view after any volume changed, logging what a
// learner would want to see in `kubectl logs` (never the Secret's values).
func (v *volumes) rebuild() {
	l := &web.Live{
		Settings:          live.Parse(snapshot(v.configDir), v.cfg.MaxUploadBytes),
		Labels:            pod.ParseLabels(snapshot(v.info).Get("labels", "")),
		SecretFingerprint: v.secret().Fingerprint(),
	}
	prev := v.current.Swap(l)
	if prev == nil || prev.Settings.Fingerprint != l.Settings.Fingerprint || prev.SecretFingerprint != l.SecretFingerprint {
		v.log.Info("live settings loaded", "config", l.Settings.Fingerprint, "secret", l.SecretFingerprint,
			"title", l.Settings.Title, "upload_limit", l.Settings.UploadLimit, "features", l.Settings.Features)
	}
	for _, p := range l.Settings.Problems {
		v.log.Warn("ConfigMap value rejected; using the default", "problem", p)
	}
}

func sessionKey(configured string) ([]byte, error) {
	if configured != "" {
		return []byte(configured), nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("make a session key: %w", err)
	}
	return key, nil
}
