package work

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestErrorKinds(t *testing.T) {
	tests := []struct {
		code      codes.Code
		transient bool
		permanent bool
	}{
		{codes.Unavailable, true, false},
		{codes.DeadlineExceeded, true, false},
		{codes.ResourceExhausted, true, false},
		{codes.NotFound, false, true},        // the photo was deleted
		{codes.InvalidArgument, false, true}, // imageproc refused the variant
		{codes.FailedPrecondition, false, false},
		{codes.Internal, false, false},
	}
	for _, tt := range tests {
		err := fmt.Errorf("call: %w", status.Error(tt.code, "x"))
		if got := transient(err); got != tt.transient {
			t.Errorf("transient(%s) = %v", tt.code, got)
		}
		var perm permanentError
		if got := errors.As(classify("download", err), &perm); got != tt.permanent {
			t.Errorf("classify(%s) permanent = %v", tt.code, got)
		}
	}
}
