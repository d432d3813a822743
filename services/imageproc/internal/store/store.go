// Package store keeps imageproc's metadata and work queue. Store has two
// implementations that pass one contract test suite (storetest):
// PostgreSQL through pgx, for Kubernetes, and an embedded SQLite file, so
// `make run` needs nothing installed. The images leave SQLite out (-tags
// nosqlite: sqlite.go, nosqlite.go).
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/propagation"
)

var (
	// ErrNotFound: no such image, variant, batch or task.
	ErrNotFound = errors.New("not found")
	// ErrLeaseLost: the worker no longer holds the task's lease (it expired
	// and another worker may have claimed the task).
	ErrLeaseLost = errors.New("lease not held")
)

// Image is a stored photo's metadata.
type Image struct {
	ID          string
	Filename    string
	ContentType string
	SizeBytes   int64
	Width       int
	Height      int
	SHA256      string
	CreatedAt   time.Time
	// DeleteTokenHash is the hex SHA-256 of the token that may delete the
	// image; "" for images stored before tokens existed.
	DeleteTokenHash string
	// DecodeError says why the image cannot be decoded, once a render found
	// out; "" until then.
	DecodeError string
}

// Variant is a transformed copy of an image, keyed by (ImageID, Spec).
type Variant struct {
	ImageID     string
	Spec        string
	ContentType string
	SizeBytes   int64
	Width       int
	Height      int
	SHA256      string
	CreatedAt   time.Time
}

// TaskState is where a task is in its life.
type TaskState string

const (
	Pending TaskState = "pending"
	Leased  TaskState = "leased"
	Done    TaskState = "done"
	Failed  TaskState = "failed"
)

// Task asks for one variant of one image.
type Task struct {
	ID             int64
	BatchID        string
	ImageID        string
	Spec           string
	State          TaskState
	Attempts       int
	LeaseOwner     string
	LeaseExpiresAt time.Time
	LastError      string
	// BatchTraceparent is the W3C traceparent of the request that queued
	// the task's batch, or empty: a worker links its trace to it.
	BatchTraceparent string
}

// Batch is a group of tasks and their progress.
type Batch struct {
	ID        string
	Spec      string
	CreatedAt time.Time
	Total     int
	Pending   int
	Leased    int
	Done      int
	Failed    int
}

// Claim asks for up to Max tasks for Worker.
type Claim struct {
	Worker string
	Max    int
	Lease  time.Duration
	// With ShardCount > 0, only tasks whose ID modulo ShardCount equals
	// ShardIndex: an Indexed Job's pods split the queue this way.
	ShardIndex int
	ShardCount int
}

// Store is imageproc's persistent state. Every method honours ctx.
type Store interface {
	Ping(ctx context.Context) error
	Close()

	CreateImage(ctx context.Context, img Image) (Image, error)
	GetImage(ctx context.Context, id string) (Image, error)
	// ListImages returns up to limit images, newest first, starting after
	// the image with ID after ("" for the first page).
	ListImages(ctx context.Context, limit int, after string) ([]Image, error)
	// DeleteImage removes an image with its variants and tasks and returns
	// the SHA-256s that rows referred to, for the caller to collect.
	DeleteImage(ctx context.Context, id string) ([]string, error)
	// RecordDecodeError marks every image whose content is sum as one that
	// cannot be decoded, with why: the bytes are what fail, whichever
	// image row refers to them.
	RecordDecodeError(ctx context.Context, sum, why string) error
	// BlobInUse reports whether any image or variant refers to sum.
	BlobInUse(ctx context.Context, sum string) (bool, error)
	// ExpireVariants deletes the variants created before before, except
	// those whose spec is in keep, and returns their SHA-256s.
	ExpireVariants(ctx context.Context, before time.Time, keep []string) ([]string, error)

	// PutVariant stores v unless (ImageID, Spec) exists; either way it
	// returns the stored variant and whether this call created it.
	PutVariant(ctx context.Context, v Variant) (Variant, bool, error)
	GetVariant(ctx context.Context, imageID, spec string) (Variant, error)
	ListVariants(ctx context.Context, imageID string) ([]Variant, error)

	// CreateBatch queues one task per image for spec; no imageIDs means
	// every image. An unknown image ID fails the whole batch.
	CreateBatch(ctx context.Context, id, spec string, imageIDs []string) (Batch, error)
	// QueueMissing queues, as batch id, a task for spec for every image
	// that has neither a variant of spec nor a pending or leased task for
	// it, in one statement however many images there are, and returns how
	// many it queued. With none, or with dryRun, it stores nothing (no
	// batch either) and returns how many it would have queued.
	QueueMissing(ctx context.Context, id, spec string, dryRun bool) (int, error)
	GetBatch(ctx context.Context, id string) (Batch, error)
	// ClaimTasks leases pending tasks whose retry time has come, and tasks
	// whose lease has expired, to one worker; never one task to two
	// workers. Each claim counts as an attempt; a task whose lease expires
	// after its last attempt is failed.
	ClaimTasks(ctx context.Context, c Claim) ([]Task, error)
	// OpenTasks counts the tasks in a shard (shardCount 0: all) that are
	// pending or leased: the work not yet finished.
	OpenTasks(ctx context.Context, shardIndex, shardCount int) (int, error)
	RenewLease(ctx context.Context, taskID int64, worker string, lease time.Duration) (time.Time, error)
	CompleteTask(ctx context.Context, taskID int64, worker string) error
	// FailTask records msg and returns Pending if the task will be retried
	// (claimable once retryAfter has passed) or Failed if its attempts are
	// used up.
	FailTask(ctx context.Context, taskID int64, worker, msg string, retryAfter time.Duration) (TaskState, error)
	// ReleaseTask returns a task to the queue without counting the attempt.
	ReleaseTask(ctx context.Context, taskID int64, worker string) error
}

// NewID returns a new image or batch ID: 12 hex digits of Unix
// milliseconds then 8 random ones, so IDs sort by creation time and
// pagination by ID is pagination by age.
func NewID() string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%012x%s", time.Now().UnixMilli(), hex.EncodeToString(r[:]))
}

// DefaultMaxAttempts is how often a task is tried before it fails for good.
const DefaultMaxAttempts = 3

func notFound(kind, id string) error { return fmt.Errorf("%s %q: %w", kind, id, ErrNotFound) }

func leaseLost(taskID int64, worker string) error {
	return fmt.Errorf("task %d for worker %q: %w", taskID, worker, ErrLeaseLost)
}

// reasonExpired is the error recorded on a task whose last lease expired.
const reasonExpired = "lease expired on the last attempt (worker crashed or too slow)"

// traceparent is the W3C traceparent of the span in ctx, empty outside a
// trace. A batch keeps its creator's: the tasks are worked later, by
// another process, in traces of their own that link back to it.
func traceparent(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier["traceparent"]
}
