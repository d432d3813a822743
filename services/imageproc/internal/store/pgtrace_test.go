package store

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestPgTracer(t *testing.T) {
	const insert = `INSERT INTO images (id, name) VALUES ($1, $2)`
	for _, tc := range []struct {
		name     string
		sql      string
		tag      string
		err      error
		wantName string
		want     map[attribute.Key]string
		wantErr  bool
	}{
		{name: "insert", sql: insert, tag: "INSERT 0 1", wantName: "INSERT", want: map[attribute.Key]string{
			"db.system.name": "postgresql", "db.operation.name": "INSERT", "db.query.text": insert,
		}},
		{name: "select on its own line", sql: "\n\t\tselect id FROM images", tag: "SELECT 2", wantName: "SELECT", want: map[attribute.Key]string{
			"db.operation.name": "SELECT", "db.response.returned_rows": "2",
		}},
		{name: "with: no operation", sql: "WITH x AS (SELECT 1) DELETE FROM tasks", tag: "DELETE 3", wantName: "postgresql", want: map[attribute.Key]string{
			"db.system.name": "postgresql",
		}},
		{name: "SQLSTATE of a failure", sql: insert, err: &pgconn.PgError{Code: "23505", Message: "duplicate key"}, wantName: "INSERT", wantErr: true,
			want: map[attribute.Key]string{"db.response.status_code": "23505", "error.type": "23505"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spans := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
			tracer := &pgTracer{tracer: tp.Tracer("test")}
			ctx, parent := tp.Tracer("test").Start(context.Background(), "rpc")
			qctx := tracer.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: tc.sql, Args: []any{"secret-token", "me.jpg"}})
			tracer.TraceQueryEnd(qctx, nil, pgx.TraceQueryEndData{CommandTag: pgconn.NewCommandTag(tc.tag), Err: tc.err})
			parent.End()

			got := spans.GetSpans()
			if len(got) != 2 {
				t.Fatalf("got %d spans, want the query's and its parent", len(got))
			}
			q := got[0]
			if q.Name != tc.wantName || q.SpanKind != trace.SpanKindClient || q.Parent.SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("span %q kind %v parent %v; want %q, client, child of %v", q.Name, q.SpanKind, q.Parent.SpanID(), tc.wantName, parent.SpanContext().SpanID())
			}
			attrs := attribute.NewSet(q.Attributes...)
			for k, want := range tc.want {
				if v, ok := attrs.Value(k); !ok || v.String() != want {
					t.Errorf("%s = %q, want %q", k, v.String(), want)
				}
			}
			for _, kv := range q.Attributes {
				if v := kv.Value.String(); v == "secret-token" || v == "me.jpg" {
					t.Errorf("attribute %s records an argument: %q", kv.Key, v)
				}
			}
			if failed := q.Status.Code == codes.Error; failed != tc.wantErr {
				t.Errorf("status %v, want error %v", q.Status, tc.wantErr)
			}
		})
	}
}

func TestPgTracerNeedsATrace(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	tracer := &pgTracer{tracer: tp.Tracer("test")}
	ctx := tracer.TraceQueryStart(context.Background(), nil, pgx.TraceQueryStartData{SQL: "SELECT 1"})
	tracer.TraceQueryEnd(ctx, nil, pgx.TraceQueryEndData{CommandTag: pgconn.NewCommandTag("SELECT 1")})
	if got := spans.GetSpans(); len(got) != 0 {
		t.Errorf("a query outside any trace made %d spans (%s), want none", len(got), got[0].Name)
	}
}
