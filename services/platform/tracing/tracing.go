// Package tracing sets up OpenTelemetry traces from the standard OTEL_*
// environment. It is apart from telemetry because its gRPC exporter links
// gRPC, whose golang.org/x/net/trace registers HTML templates at init: a
// binary that runs a template keeps every exported method of every type it
// links, which doubled clusterview (then linking client-go) when it
// imported tracing it does not use.
package tracing

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/kubelab/kubelab/services/platform/build"
)

// Setup installs W3C trace-context propagation and, when the
// OpenTelemetry environment asks for an exporter (see exportWanted), a
// tracer provider that batches spans to it. The exporter is the one the
// standard variables choose (see spanExporter), and the resource is
// build.Info's service, version and instance overridden by
// OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME.
//
// Without an exporter, spans are never recorded, so tracing costs nothing;
// the trace context of an incoming call still reaches the outgoing ones, so
// a trace passes through a service that does not export. With a collector
// that is down, spans are dropped, never the request. The returned function
// flushes pending spans; call it on shutdown.
func Setup(ctx context.Context, info build.Info) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if !exportWanted(os.Getenv) {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := spanExporter(ctx, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("create the trace exporter: %w", err)
	}
	res, err := Resource(ctx, info)
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, FlushTimeout)
		defer cancel()
		return tp.Shutdown(ctx)
	}, nil
}

// exportWanted decides whether spans are exported at all. The OpenTelemetry
// default, OTLP to localhost:4317, would have every process dial a
// collector that is not there and record every span for nothing, so
// kubelab exports only when told to: OTEL_TRACES_EXPORTER names an
// exporter (console to read spans on stdout), or an OTLP endpoint is set.
// OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none turn it off
// whatever else is set.
func exportWanted(getenv func(string) string) bool {
	if disabled, _ := strconv.ParseBool(strings.TrimSpace(getenv("OTEL_SDK_DISABLED"))); disabled {
		return false
	}
	switch exporters := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exporters {
	case "none":
		return false
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	default:
		return true
	}
}

// spanExporter is the exporter OTEL_TRACES_EXPORTER names (otlp, the
// default, or console: spans as JSON on stdout), over the protocol
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL names
// (http/protobuf, OpenTelemetry's default, or grpc). The OTLP exporters
// read the rest (endpoint, headers, timeout, TLS) themselves. The contrib
// autoexport package does the same, but links the metric and log
// exporters too: 4 MB more in every binary, for signals kubelab does not
// export.
func spanExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	switch name := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); name {
	case "", "otlp":
	case "console":
		return stdouttrace.New()
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: kubelab exports traces with otlp, console or none", name)
	}
	protocol, from := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	if protocol == "" {
		protocol, from = getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "OTEL_EXPORTER_OTLP_PROTOCOL"
	}
	switch protocol {
	case "", "http/protobuf":
		return otlptracehttp.New(ctx)
	case "grpc":
		return otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("%s=%q: want grpc or http/protobuf", from, protocol)
	}
}

// Resource describes this process in its spans. build.Info gives the
// defaults; OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME, override
// them: resource.New merges its options in order, the later winning, so
// the environment comes last. An operator can then rename a service
// (frontend-canary) or add deployment.environment.name without a rebuild.
func Resource(ctx context.Context, info build.Info) (*resource.Resource, error) {
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(
			semconv.ServiceName(info.Service),
			semconv.ServiceVersion(info.Version),
			semconv.ServiceInstanceID(info.Instance),
		),
		resource.WithFromEnv(),
	)
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES is the usual cause: say
		// which variable, as the error alone does not.
		return nil, fmt.Errorf("build the trace resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME): %w", err)
	}
	return res, nil
}

// FlushTimeout bounds the flush of pending spans at exit: with a collector
// that does not answer, the exporter's own 10s timeout held every exit
// that long after "stopped cleanly", into the pod's grace period.
const FlushTimeout = 2 * time.Second
