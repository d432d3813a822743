package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubelab/kubelab/services/imageproc/internal/blob"
	"github.com/kubelab/kubelab/services/imageproc/internal/store"
	"github.com/kubelab/kubelab/services/imageproc/pipeline"
)

// The code toStatus picks decides what a client does next: retry at once
// (Unavailable), count an attempt and back off (Internal), or give up and
// tell the user (InvalidArgument and the like). Only faults of imageproc
// itself are logged at ERROR.
func TestToStatus(t *testing.T) {
	// Real errors where the real part can make them.
	_, cropErr := pipeline.Apply(t.Context(), image.NewRGBA(image.Rect(0, 0, 10, 10)),
		pipeline.Spec{Ops: []pipeline.Op{pipeline.Crop{X: 5, Y: 5, Width: 10, Height: 10}}, Format: pipeline.PNG}, 1e6)
	pg, err := store.OpenPostgres(t.Context(), "postgres://u@127.0.0.1:1/db?sslmode=disable&connect_timeout=5", 3)
	if err != nil {
		t.Fatal(err)
	}
	refused := pg.Ping(t.Context()) // nothing listens on port 1
	pg.Close()
	lite, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "meta.db"), 3)
	if err != nil {
		t.Fatal(err)
	}
	lite.Close()
	_, closed := lite.GetImage(t.Context(), "x") // a bug: the store used after Close

	tests := []struct {
		name   string
		err    error
		code   codes.Code
		logged bool // at ERROR
	}{
		{"a status passes through", status.Error(codes.Aborted, "x"), codes.Aborted, false},
		{"no such image", fmt.Errorf("get: %w", store.ErrNotFound), codes.NotFound, false},
		{"no such blob", blob.ErrNotFound, codes.NotFound, false},
		{"lease lost", store.ErrLeaseLost, codes.FailedPrecondition, false},
		{"too many pixels", pipeline.ErrTooLarge, codes.ResourceExhausted, false},
		{"not an image", pipeline.ErrInvalid, codes.InvalidArgument, false},
		{"crop outside the image", cropErr, codes.InvalidArgument, false},
		{"client went away", context.Canceled, codes.Canceled, false},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded, false},
		{"database refuses connections", refused, codes.Unavailable, false},
		{"database connection dropped", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, codes.Unavailable, false},
		{"database shutting down", &pgconn.PgError{Code: "57P01"}, codes.Unavailable, false},
		{"database connection failure", &pgconn.PgError{Code: "08006"}, codes.Unavailable, false},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, codes.Unavailable, false},
		{"volume full", fmt.Errorf("sync blob: %w", &fs.PathError{Op: "write", Path: "/data/tmp/x", Err: syscall.ENOSPC}), codes.Internal, true},
		{"database disk full", &pgconn.PgError{Code: "53100"}, codes.Internal, true},
		{"constraint violated", fmt.Errorf("insert: %w", &pgconn.PgError{Code: "23505"}), codes.Internal, true},
		{"store used after close", closed, codes.Internal, true},
		{"anything else", errors.New("boom"), codes.Internal, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("the test could not make its error")
			}
			var out bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
			got := toStatus(t.Context(), log, "do", tt.err)
			if code := status.Code(got); code != tt.code {
				t.Errorf("%v -> %s (%v), want %s", tt.err, code, got, tt.code)
			}
			if logged := strings.Contains(out.String(), `"level":"ERROR"`); logged != tt.logged {
				t.Errorf("logged at ERROR = %v, want %v:\n%s", logged, tt.logged, out.String())
			}
			if tt.code == codes.Internal && strings.Contains(status.Convert(got).Message(), tt.err.Error()) {
				t.Errorf("the client sees the internal detail: %v", got)
			}
		})
	}
	if toStatus(t.Context(), slog.New(slog.DiscardHandler), "do", nil) != nil {
		t.Error("nil error mapped to a status")
	}
}
