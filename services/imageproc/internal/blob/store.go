package blob

import (
	"context"
	"io"
	"time"
)

// Store is what the server needs from blob storage. Two implementations
// pass one contract test (blobtest): Dir, files on a volume, the default;
// and pgblob, rows in PostgreSQL, for clusters where imageproc's replicas
// must be free to run on any node (a ReadWriteOnce volume ties every pod
// that mounts it to one node).
//
// Blobs are named by the SHA-256 of their bytes, so a commit is idempotent
// and a blob, once committed, never changes: it is whole or absent.
type Store interface {
	// Create starts a blob of at most limit bytes. Nothing is visible to
	// readers until its Writer commits.
	Create(limit int64) (Writer, error)
	// Open reads a committed blob. A missing or malformed sum is
	// ErrNotFound.
	Open(ctx context.Context, sum string) (io.ReadSeekCloser, error)
	// Remove deletes a committed blob; removing a missing blob is not an
	// error.
	Remove(ctx context.Context, sum string) error
	// Walk calls fn with the sum and size of every committed blob, and
	// when it was last committed: committing bytes already stored counts,
	// because garbage collection spares recent blobs, and a blob committed
	// again is about to be referenced again. Walk stops at fn's first error
	// and returns it.
	Walk(ctx context.Context, fn func(sum string, size int64, committed time.Time) error) error
}

// Writer receives a blob's bytes, hashing them as they pass.
type Writer interface {
	// Write appends p, or writes nothing and fails with ErrTooLarge when
	// p would take the blob past its limit.
	Write(p []byte) (int, error)
	// Size is the number of bytes written so far.
	Size() int64
	// Reader reads back what has been written, for validation before
	// Commit.
	Reader() *io.SectionReader
	// Commit makes the blob durable and visible under its SHA-256, which
	// it returns. Committing bytes already stored keeps one copy.
	Commit(ctx context.Context) (string, error)
	// Abort discards the blob. After Commit it does nothing, so callers
	// can defer it.
	Abort()
}

// ValidSum reports whether sum names a blob: a SHA-256 in lower-case hex,
// as Commit returns it. Anything else cannot be a blob's name (and must
// never become a path).
func ValidSum(sum string) bool {
	if len(sum) != 64 {
		return false
	}
	for _, c := range []byte(sum) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
