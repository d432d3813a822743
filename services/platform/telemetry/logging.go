// Package telemetry makes a service observable the three usual ways: JSON
// logs (slog) that carry the trace they belong to, Prometheus metrics with
// bounded label cardinality, and OpenTelemetry traces exported over OTLP when
// a collector is configured.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/grpclog"
)

// NewLogger returns a JSON logger at level ("debug", "info", "warn",
// "error") whose records carry trace_id and span_id when the context holds a
// span, so a log line leads to its trace.
func NewLogger(w io.Writer, level string, attrs ...any) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv})
	return slog.New(traceHandler{h}).With(attrs...), nil
}

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// SetDefault makes l the logger of everything in the process that logs
// without being handed one, so that no line leaves the JSON format: slog's
// default, the log package (which net/http and httputil fall back to), and
// gRPC's logger, which otherwise writes lines of its own format to stderr.
// gRPC reads its logger without a lock: call this before any gRPC call.
func SetDefault(l *slog.Logger) {
	slog.SetDefault(l)
	grpclog.SetLoggerV2(grpcLogger{l.With("logger", "grpc")})
}

// ErrorLog is a *log.Logger for APIs that want one (http.Server.ErrorLog,
// httputil.ReverseProxy.ErrorLog): each line becomes a warning record of
// l. What net/http logs there is a client's or a handler's fault (a TLS
// handshake that failed, a panic it recovered), not a reason to stop.
func ErrorLog(l *slog.Logger, attrs ...any) *log.Logger {
	return slog.NewLogLogger(l.With(attrs...).Handler(), slog.LevelWarn)
}

// grpcLogger writes gRPC's logs through slog. gRPC's info lines (every
// connection made or lost, every resolver update) are debug records here:
// gRPC itself drops them unless asked, and so does LOG_LEVEL=info.
type grpcLogger struct{ log *slog.Logger }

func (g grpcLogger) emit(level slog.Level, msg string) {
	g.log.Log(context.Background(), level, strings.TrimSuffix(msg, "\n"))
}

func (g grpcLogger) Info(args ...any)   { g.emit(slog.LevelDebug, fmt.Sprint(args...)) }
func (g grpcLogger) Infoln(args ...any) { g.emit(slog.LevelDebug, fmt.Sprintln(args...)) }
func (g grpcLogger) Infof(format string, args ...any) {
	g.emit(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (g grpcLogger) Warning(args ...any)   { g.emit(slog.LevelWarn, fmt.Sprint(args...)) }
func (g grpcLogger) Warningln(args ...any) { g.emit(slog.LevelWarn, fmt.Sprintln(args...)) }
func (g grpcLogger) Warningf(format string, args ...any) {
	g.emit(slog.LevelWarn, fmt.Sprintf(format, args...))
}
func (g grpcLogger) Error(args ...any)   { g.emit(slog.LevelError, fmt.Sprint(args...)) }
func (g grpcLogger) Errorln(args ...any) { g.emit(slog.LevelError, fmt.Sprintln(args...)) }
func (g grpcLogger) Errorf(format string, args ...any) {
	g.emit(slog.LevelError, fmt.Sprintf(format, args...))
}

// Fatal is what gRPC calls when it cannot go on; like its own logger,
// this one exits.
func (g grpcLogger) Fatal(args ...any) { g.emit(slog.LevelError, fmt.Sprint(args...)); os.Exit(1) }
func (g grpcLogger) Fatalln(args ...any) {
	g.emit(slog.LevelError, fmt.Sprintln(args...))
	os.Exit(1)
}
func (g grpcLogger) Fatalf(format string, args ...any) {
	g.emit(slog.LevelError, fmt.Sprintf(format, args...))
	os.Exit(1)
}

// V reports whether gRPC's verbose logs (level 2 and up, the inner
// workings of its transports) are wanted: never, they are for gRPC's own
// developers.
func (g grpcLogger) V(level int) bool { return level <= 0 }
