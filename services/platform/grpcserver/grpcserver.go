// Package grpcserver builds the gRPC server every kubelab service runs: the
// same interceptors, health service, reflection and connection limits, in
// one place.
package grpcserver

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/kubelab/kubelab/services/platform/grpcmetrics"
	"github.com/kubelab/kubelab/services/platform/health"
)

// Response headers on every RPC, so a client (loadgen, the frontend's
// cluster panel) sees which pod and which version answered.
const (
	ServedByHeader = "kubelab-served-by"
	VersionHeader  = "kubelab-version"
)

// Options configure New.
type Options struct {
	Log      *slog.Logger
	Metrics  *grpcmetrics.Metrics
	Health   *health.Checker
	Instance string // the pod name, sent in ServedByHeader
	Version  string // the build version, sent in VersionHeader
	// MaxConnectionAge closes each client connection after this long (with a
	// grace period for in-flight calls). Clients then reconnect and re-resolve,
	// so pods added by a scale-up start getting traffic. Zero means never.
	MaxConnectionAge time.Duration
	// MaxConnectionAgeGrace is how long calls already running on an aged
	// connection may go on; then the connection is closed under them. It
	// must cover the longest call a client makes. Zero (or less) means
	// DefaultMaxConnectionAgeGrace.
	MaxConnectionAgeGrace time.Duration
}

// DefaultMaxConnectionAgeGrace covers the longest call kubelab makes: an
// upload, download or transform under the frontend's default
// IMAGEPROC_STREAM_TIMEOUT (2m), plus 10s for it to reach the server.
// When MaxConnectionAge strikes, the server only stops taking new calls on
// that connection (a GOAWAY: the client opens a new one for them); calls
// already on it started before, so their deadlines end within the grace. A
// shorter grace cut 50 MiB uploads over slow links at age + grace, about a
// minute after their connection opened, with Unavailable.
const DefaultMaxConnectionAgeGrace = 2*time.Minute + 10*time.Second

// New returns a server with, from the outside in: the served-by header,
// tracing (a no-op without a collector), metrics, logging and panic
// recovery; grpc.health.v1 from opts.Health; and server reflection, so
// grpcurl works without the .proto files.
func New(opts Options, extra ...grpc.ServerOption) *grpc.Server {
	ka := keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}
	if opts.MaxConnectionAge > 0 {
		ka.MaxConnectionAge = opts.MaxConnectionAge
		ka.MaxConnectionAgeGrace = opts.MaxConnectionAgeGrace
		if ka.MaxConnectionAgeGrace <= 0 {
			ka.MaxConnectionAgeGrace = DefaultMaxConnectionAgeGrace
		}
	}
	srvOpts := append([]grpc.ServerOption{
		// Probes (kubelet's exec probe, clients' health checks) would be
		// a trace each, every few seconds, and trace nothing of interest.
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithFilter(filters.Not(filters.HealthCheck())))),
		grpc.KeepaliveParams(ka),
		// Allow the client keepalive pings kubelab's clients send.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(
			servedByUnary(opts.Instance, opts.Version),
			opts.Metrics.UnaryServerInterceptor(),
			logUnary(opts.Log),
			recoverUnary(opts.Log),
		),
		grpc.ChainStreamInterceptor(
			servedByStream(opts.Instance, opts.Version),
			opts.Metrics.StreamServerInterceptor(),
			logStream(opts.Log),
			recoverStream(opts.Log),
		),
	}, extra...)
	s := grpc.NewServer(srvOpts...)
	healthpb.RegisterHealthServer(s, opts.Health.GRPCServer())
	reflection.Register(s)
	return s
}

func servedByUnary(instance, version string) grpc.UnaryServerInterceptor {
	md := metadata.Pairs(ServedByHeader, instance, VersionHeader, version)
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		_ = grpc.SetHeader(ctx, md)
		return handler(ctx, req)
	}
}

func servedByStream(instance, version string) grpc.StreamServerInterceptor {
	md := metadata.Pairs(ServedByHeader, instance, VersionHeader, version)
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		_ = ss.SetHeader(md)
		return handler(srv, ss)
	}
}

// logLevel: server faults are errors, client mistakes are info, and
// successes are debug so a load test does not flood the log.
func logLevel(err error) slog.Level {
	switch status.Code(err) {
	case codes.OK:
		return slog.LevelDebug
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func logRPC(ctx context.Context, log *slog.Logger, method string, start time.Time, err error) {
	log.Log(ctx, logLevel(err), "rpc", "method", method, "code", status.Code(err).String(),
		"duration_ms", float64(time.Since(start).Microseconds())/1000, "err", errString(err))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return status.Convert(err).Message()
}

func logUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logRPC(ctx, log, info.FullMethod, start, err)
		return resp, err
	}
}

func logStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logRPC(ss.Context(), log, info.FullMethod, start, err)
		return err
	}
}

// A panic in one handler must fail that call, not the pod.
func recovered(ctx context.Context, log *slog.Logger, method string, p any) error {
	log.ErrorContext(ctx, "panic in handler", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error")
}

func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = recovered(ctx, log, info.FullMethod, p)
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = recovered(ss.Context(), log, info.FullMethod, p)
			}
		}()
		return handler(srv, ss)
	}
}
