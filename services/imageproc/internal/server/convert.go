package server

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/internal/store"
	"github.com/kubelab/kubelab/services/imageproc/pipeline"
)

func imageToProto(i store.Image) *imageprocv1.Image {
	return &imageprocv1.Image{
		Id: i.ID, Filename: i.Filename, ContentType: i.ContentType, SizeBytes: i.SizeBytes,
		Width: int32(i.Width), Height: int32(i.Height), Sha256: i.SHA256, CreateTime: timestamppb.New(i.CreatedAt), DecodeError: i.DecodeError,
	}
}

func variantToProto(v store.Variant) *imageprocv1.Variant {
	return &imageprocv1.Variant{
		ImageId: v.ImageID, Spec: v.Spec, ContentType: v.ContentType, SizeBytes: v.SizeBytes,
		Width: int32(v.Width), Height: int32(v.Height), Sha256: v.SHA256, CreateTime: timestamppb.New(v.CreatedAt),
	}
}

func batchToProto(b store.Batch) *imageprocv1.Batch {
	return &imageprocv1.Batch{
		Id: b.ID, Spec: b.Spec, CreateTime: timestamppb.New(b.CreatedAt), Total: int32(b.Total),
		Pending: int32(b.Pending), Leased: int32(b.Leased), Done: int32(b.Done), Failed: int32(b.Failed),
	}
}

var taskStates = map[store.TaskState]imageprocv1.TaskState{
	store.Pending: imageprocv1.TaskState_TASK_STATE_PENDING,
	store.Leased:  imageprocv1.TaskState_TASK_STATE_LEASED,
	store.Done:    imageprocv1.TaskState_TASK_STATE_DONE,
	store.Failed:  imageprocv1.TaskState_TASK_STATE_FAILED,
}

func taskToProto(t store.Task) *imageprocv1.Task {
	out := &imageprocv1.Task{
		Id: fmt.Sprint(t.ID), BatchId: t.BatchID, ImageId: t.ImageID, Spec: t.Spec,
		State: taskStates[t.State], Attempts: int32(t.Attempts), LastError: t.LastError, BatchTraceparent: t.BatchTraceparent,
	}
	if t.State == store.Leased {
		out.LeaseExpireTime = timestamppb.New(t.LeaseExpiresAt)
	}
	return out
}

// specFromProto turns API operations into a normalised pipeline.Spec,
// naming the offending field in any error.
func specFromProto(ops []*imageprocv1.Operation, out *imageprocv1.Output) (pipeline.Spec, error) {
	var spec pipeline.Spec
	for i, o := range ops {
		op, err := opFromProto(o)
		if err != nil {
			return pipeline.Spec{}, fmt.Errorf("operations[%d]: %w", i, err)
		}
		spec.Ops = append(spec.Ops, op)
	}
	switch out.GetFormat() {
	case imageprocv1.Format_FORMAT_UNSPECIFIED, imageprocv1.Format_FORMAT_JPEG:
		spec.Format = pipeline.JPEG
	case imageprocv1.Format_FORMAT_PNG:
		spec.Format = pipeline.PNG
	default:
		return pipeline.Spec{}, fmt.Errorf("output.format: unknown value %d", out.GetFormat())
	}
	spec.Quality = int(out.GetQuality())
	spec = spec.Normalize()
	return spec, spec.Validate()
}

func opFromProto(o *imageprocv1.Operation) (pipeline.Op, error) {
	switch op := o.GetOp().(type) {
	case *imageprocv1.Operation_Resize:
		mode := pipeline.Fit
		switch op.Resize.GetMode() {
		case imageprocv1.ResizeMode_RESIZE_MODE_UNSPECIFIED, imageprocv1.ResizeMode_RESIZE_MODE_FIT:
		case imageprocv1.ResizeMode_RESIZE_MODE_FILL:
			mode = pipeline.Fill
		default:
			return nil, fmt.Errorf("resize.mode: unknown value %d", op.Resize.GetMode())
		}
		return pipeline.Resize{Width: int(op.Resize.GetWidth()), Height: int(op.Resize.GetHeight()), Mode: mode}, nil
	case *imageprocv1.Operation_Thumbnail:
		return pipeline.Thumbnail{Size: int(op.Thumbnail.GetSize())}, nil
	case *imageprocv1.Operation_Crop:
		c := op.Crop
		return pipeline.Crop{X: int(c.GetX()), Y: int(c.GetY()), Width: int(c.GetWidth()), Height: int(c.GetHeight())}, nil
	case *imageprocv1.Operation_Rotate:
		return pipeline.Rotate{Degrees: int(op.Rotate.GetDegrees())}, nil
	case *imageprocv1.Operation_Flip:
		switch op.Flip.GetDirection() {
		case imageprocv1.FlipDirection_FLIP_DIRECTION_HORIZONTAL:
			return pipeline.Flip{Horizontal: true}, nil
		case imageprocv1.FlipDirection_FLIP_DIRECTION_VERTICAL:
			return pipeline.Flip{}, nil
		}
		return nil, errors.New("flip.direction: must be HORIZONTAL or VERTICAL")
	case *imageprocv1.Operation_Grayscale:
		return pipeline.Grayscale{}, nil
	case *imageprocv1.Operation_Blur:
		return pipeline.Blur{Sigma: op.Blur.GetSigma()}, nil
	case *imageprocv1.Operation_Sharpen:
		return pipeline.Sharpen{Sigma: op.Sharpen.GetSigma(), Amount: op.Sharpen.GetAmount()}, nil
	}
	return nil, errors.New("no operation set")
}
