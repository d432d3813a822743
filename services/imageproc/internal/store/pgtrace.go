package store

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// pgTracer makes a client span for each statement a pool runs (pgx calls
// it around Query, QueryRow, Exec and CopyFrom), named and described as
// OpenTelemetry's database conventions say: db.system.name postgresql,
// db.operation.name, db.query.text. The text is the SQL as written, with
// its $1 placeholders: the arguments (photo names, delete tokens) are
// never recorded.
//
// A statement gets a span only inside a trace (a gRPC call's, usually):
// the readiness check's ping and the schema check would otherwise start a
// one-span trace every few seconds, which nobody looks at.
type pgTracer struct {
	tracer trace.Tracer
}

func newPgTracer() *pgTracer {
	return &pgTracer{tracer: otel.Tracer("github.com/kubelab/kubelab/services/imageproc/internal/store")}
}

var (
	_ pgx.QueryTracer    = (*pgTracer)(nil)
	_ pgx.CopyFromTracer = (*pgTracer)(nil)
)

func (t *pgTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return t.start(ctx, conn, operation(data.SQL), semconv.DBQueryText(data.SQL))
}

func (t *pgTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	end(ctx, data.CommandTag, data.Err)
}

func (t *pgTracer) TraceCopyFromStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	return t.start(ctx, conn, "COPY", semconv.DBCollectionName(data.TableName.Sanitize()))
}

func (t *pgTracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromEndData) {
	end(ctx, data.CommandTag, data.Err)
}

func (t *pgTracer) start(ctx context.Context, conn *pgx.Conn, op string, attrs ...attribute.KeyValue) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	name := op
	if name == "" {
		name = "postgresql" // the convention's fallback: the system's name
	} else {
		attrs = append(attrs, semconv.DBOperationName(op))
	}
	attrs = append(attrs, semconv.DBSystemNamePostgreSQL)
	if conn != nil {
		cfg := conn.Config()
		attrs = append(attrs, semconv.DBNamespace(cfg.Database), semconv.ServerAddress(cfg.Host), semconv.ServerPort(int(cfg.Port)))
	}
	ctx, _ = t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx
}

// end ends the span start made, if it made one: the span in ctx is then a
// client span of this tracer's, not the caller's.
func end(ctx context.Context, tag pgconn.CommandTag, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		kind := "_OTHER"
		if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
			kind = pgErr.Code
			span.SetAttributes(semconv.DBResponseStatusCode(pgErr.Code))
		}
		span.SetAttributes(semconv.ErrorTypeKey.String(kind))
	}
	if tag.Select() {
		span.SetAttributes(attribute.Int64("db.response.returned_rows", tag.RowsAffected()))
	}
	span.End()
}

// operation is the statement's first keyword, which names the span
// (SELECT, INSERT...). A WITH query's operation is whatever follows its
// common table expressions, so it, like anything unrecognised, has none.
func operation(sql string) string {
	words := strings.Fields(sql)
	if len(words) == 0 {
		return ""
	}
	word := strings.ToUpper(strings.TrimRight(words[0], ";("))
	switch word {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "CREATE", "ALTER", "DROP", "TRUNCATE", "COPY":
		return word
	}
	return ""
}
