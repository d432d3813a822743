package tracing_test

import (
	"context"
	"net"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/tracing"
)

func TestTracingIsNoopWithoutCollector(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	shutdown, err := tracing.Setup(t.Context(), build.Current("test"))
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestTracingWithUnreachableCollectorDoesNotFail(t *testing.T) {
	// A collector that is down must cost spans, never the service.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	shutdown, err := tracing.Setup(t.Context(), build.Current("test"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 0)
	defer cancel()
	_ = shutdown(ctx) // flushing to nowhere may time out; it must return
}

// TestTracingFlushAtExitIsBounded: a collector that accepts connections
// and never answers must not hold the process's exit for the exporter's
// own 10s timeout.
func TestTracingFlushAtExitIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	shutdown, err := tracing.Setup(t.Context(), build.Current("test"))
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(t.Context(), "pending")
	span.End()
	start := time.Now()
	_ = shutdown(context.WithoutCancel(t.Context()))
	if d := time.Since(start); d > tracing.FlushTimeout+3*time.Second {
		t.Fatalf("shutdown took %v with a silent collector, want about %v", d, tracing.FlushTimeout)
	}
}
