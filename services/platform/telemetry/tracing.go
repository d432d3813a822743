package telemetry

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/kubelab/kubelab/services/platform/build"
)

// SetupTracing installs W3C trace-context propagation and, only when
// OTEL_EXPORTER_OTLP_ENDPOINT (or its traces-specific variant) is set, a
// batching OTLP/gRPC exporter configured by the standard OTEL_* variables.
// Without a collector, spans are never recorded, so tracing costs nothing;
// with one that is down, spans are dropped, never the request. The returned
// function flushes pending spans; call it on shutdown.
func SetupTracing(ctx context.Context, info build.Info) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("create OTLP trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(info.Service),
		semconv.ServiceVersion(info.Version),
		semconv.ServiceInstanceID(info.Instance),
	))
	if err != nil {
		return nil, fmt.Errorf("build trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, FlushTimeout)
		defer cancel()
		return tp.Shutdown(ctx)
	}, nil
}

// FlushTimeout bounds the flush of pending spans at exit: with a collector
// that does not answer, the exporter's own 10s timeout held every exit
// that long after "stopped cleanly", into the pod's grace period.
const FlushTimeout = 2 * time.Second
