package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubelab/kubelab/services/imageproc/internal/blob"
	"github.com/kubelab/kubelab/services/imageproc/internal/store"
	"github.com/kubelab/kubelab/services/imageproc/pipeline"
)

// toStatus maps an error to the gRPC status a client can act on. Only
// errors whose text is safe and useful reach the client; anything else is
// logged and reported generically.
//
// The code decides what clients do next, so only a passing outage is
// Unavailable (clients retry it at once, and the worker gives the task back
// without counting an attempt). A fault that would repeat (a constraint
// violated, a full disk, a bug) is Internal: retried at once it would spin.
func toStatus(ctx context.Context, log *slog.Logger, what string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, blob.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrLeaseLost):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, pipeline.ErrTooLarge), errors.Is(err, blob.ErrTooLarge):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, pipeline.ErrInvalid), errors.Is(err, pipeline.ErrOutOfBounds):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, what+": canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, what+": deadline exceeded")
	case store.Unavailable(err):
		log.WarnContext(ctx, what+" failed: the database is unavailable", "err", err)
		return status.Error(codes.Unavailable, what+": the database is unavailable; retry")
	}
	log.ErrorContext(ctx, what+" failed", "err", err)
	return status.Error(codes.Internal, what+" failed; see the imageproc log")
}
