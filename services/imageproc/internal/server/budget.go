package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubelab/kubelab/services/imageproc/pipeline"
)

// CgroupMemoryLimit is the memory limit of the cgroup the process runs in,
// which is the container's limit in a pod; 0 when there is none or it
// cannot be read. The Downward API (MEMORY_LIMIT) says the same thing
// more plainly and is preferred; this covers a container started without it.
func CgroupMemoryLimit() int64 { return cgroupMemoryLimit("/sys/fs/cgroup") }

func cgroupMemoryLimit(root string) int64 {
	// cgroup v2: one file at the root of the container's hierarchy,
	// "max" when unlimited.
	if b, err := os.ReadFile(filepath.Join(root, "memory.max")); err == nil {
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0
		}
		return n
	}
	// cgroup v1: unlimited reads as the largest page-aligned int64.
	if b, err := os.ReadFile(filepath.Join(root, "memory", "memory.limit_in_bytes")); err == nil {
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n >= 1<<62 {
			return 0
		}
		return n
	}
	return 0
}

// pipelineLimits bounds one transform: the pixel limit, the work budget,
// and its share of the memory limit (pipeline.MemoryBudget explains the
// formula).
func (d *deps) pipelineLimits() pipeline.Limits {
	return pipeline.Limits{
		MaxPixels: d.limits.MaxPixels,
		MaxMemory: pipeline.MemoryBudget(d.limits.MemoryLimit, d.limits.Transforms),
		MaxWork:   pipeline.DefaultMaxWork,
	}
}

// overBudget turns a refusal by the budget into the status the client
// sees: ResourceExhausted, as for MAX_PIXELS and MAX_UPLOAD_BYTES. The
// request is well formed (InvalidArgument would say otherwise); what it
// asks exceeds what this server grants one transform, which follows its
// memory limit and TRANSFORM_CONCURRENCY, so a bigger pod may serve it.
// Neither the frontend nor the worker retries this code.
func (d *deps) overBudget(err error) error {
	if errors.Is(err, pipeline.ErrOverMemory) {
		return status.Errorf(codes.ResourceExhausted, "%v (its share of the %d MiB memory limit, with TRANSFORM_CONCURRENCY=%d)",
			err, d.limits.MemoryLimit>>20, d.limits.Transforms)
	}
	return status.Error(codes.ResourceExhausted, err.Error())
}

// thumbnailSpec is the least a photo must allow: the gallery shows it.
var thumbnailSpec = pipeline.Spec{Ops: []pipeline.Op{pipeline.Thumbnail{Size: 256}}}.Normalize()

// viewable refuses, at upload, a photo this server could not even make a
// thumbnail of, rather than accept it and fail every page showing it.
func (d *deps) viewable(ctx context.Context, info pipeline.Info) error {
	c, err := pipeline.Estimate(info, thumbnailSpec, d.limits.MaxPixels)
	if err == nil {
		err = c.Check(d.pipelineLimits(), fmt.Sprintf("a thumbnail of this %dx%d %s", info.Width, info.Height, info.Format))
	}
	if errors.Is(err, pipeline.ErrOverBudget) {
		return d.overBudget(err)
	}
	return toStatus(ctx, d.log, "upload", err)
}
