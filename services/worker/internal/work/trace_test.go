package work

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
)

func TestTaskSpanLinksToItsBatch(t *testing.T) {
	const (
		batchTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		batchSpan  = "00f067aa0ba902b7"
	)
	tests := []struct {
		name        string
		traceparent string
		wantLink    bool
	}{
		{"batch queued in a trace", "00-" + batchTrace + "-" + batchSpan + "-01", true},
		{"batch queued outside a trace", "", false},
		{"unreadable traceparent", "00-garbage-01", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spans := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
			w := &Worker{tracer: tp.Tracer("test")}
			// Whatever trace the worker's loop is in, the task starts its own.
			loop, loopSpan := tp.Tracer("test").Start(context.Background(), "loop")
			_, span := w.startSpan(loop, &imageprocv1.Task{Id: "7", BatchId: "b", ImageId: "img", Spec: "s", Attempts: 1, BatchTraceparent: tt.traceparent})
			span.End()
			loopSpan.End()

			got := spans.GetSpans()[0]
			if got.Name != "process task" || got.SpanKind != trace.SpanKindConsumer {
				t.Errorf("span %q kind %v, want \"process task\", consumer", got.Name, got.SpanKind)
			}
			if got.Parent.IsValid() || got.SpanContext.TraceID() == loopSpan.SpanContext().TraceID() {
				t.Errorf("the task's span is in the trace %s of its parent %s, want a trace of its own", got.SpanContext.TraceID(), got.Parent.SpanID())
			}
			if !tt.wantLink {
				if len(got.Links) != 0 {
					t.Errorf("links %v, want none", got.Links)
				}
				return
			}
			if len(got.Links) != 1 || got.Links[0].SpanContext.TraceID().String() != batchTrace || got.Links[0].SpanContext.SpanID().String() != batchSpan {
				t.Fatalf("links %+v, want one to %s/%s", got.Links, batchTrace, batchSpan)
			}
			if got.SpanContext.TraceID().String() == batchTrace {
				t.Error("the task's span is in the batch's trace, want a trace of its own")
			}
		})
	}
}
