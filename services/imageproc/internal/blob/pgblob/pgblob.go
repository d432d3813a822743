// Package pgblob keeps photos and variants in PostgreSQL, in the database
// that already holds their metadata (BLOB_STORE=postgres). No pod then needs
// a volume of its own: a ReadWriteOnce volume ties every pod that mounts it
// to one node, while these replicas may run on any node.
//
// One row a blob in the table blobs (migration 0004), its bytes a bytea.
// Why bytea and not large objects: a large object lives apart from the row
// that names it (in pg_largeobject, by OID), so every blob would be two
// things to keep in step, and a deleted row would leave its object behind
// unless something unlinked it. A bytea is one row per blob, written whole or
// not at all by one statement, removed by one DELETE, and dumped with its
// table by pg_dump (which leaves large objects out of a dump of chosen
// tables). What large objects offer beyond that, values over bytea's 1 GB
// and writes in place, buys nothing here: photos are bounded by
// MAX_UPLOAD_BYTES and never change once stored. Reads still stream: the
// column is stored uncompressed, so substring() fetches a chunk's pages
// only.
package pgblob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kubelab/kubelab/services/imageproc/internal/blob"
)

// MaxSize is the largest blob a bytea holds (1 GB, less a byte for its
// header): MAX_UPLOAD_BYTES may not be set above it with BLOB_STORE=postgres.
const MaxSize = 1<<30 - 1

// Store is a blob.Store in PostgreSQL. The table comes from the store's
// migrations (`imageproc migrate`).
type Store struct {
	pool *pgxpool.Pool
	tmp  string
}

var _ blob.Store = (*Store)(nil)

// New keeps blobs in the database pool connects to, staging uploads in
// files under tmp (in a pod, an emptyDir at /tmp: the root filesystem is
// read-only).
func New(pool *pgxpool.Pool, tmp string) *Store {
	return &Store{pool: pool, tmp: tmp}
}

// Create starts a blob of at most limit bytes, staged in a temporary file
// rather than memory: uploads run in parallel, each up to MAX_UPLOAD_BYTES.
func (s *Store) Create(limit int64) (blob.Writer, error) {
	f, err := os.CreateTemp(s.tmp, "imageproc-blob-")
	if err != nil {
		return nil, fmt.Errorf("create temp blob: %w", err)
	}
	// Unlinked at once: the open file lives on until it is closed, so a
	// process that dies leaves nothing behind, even on an emptyDir, which
	// outlives a container's restarts.
	if err := os.Remove(f.Name()); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("unlink temp blob: %w", err)
	}
	return &writer{s: s, f: f, hash: sha256.New(), limit: limit}, nil
}

// Open reads a committed blob a chunk at a time. Unlike an open file, a
// reader does not keep a blob that is removed while it reads: its next
// chunk fails with ErrNotFound. Blobs are removed only once no row refers
// to them, so only a download racing its photo's deletion sees that.
func (s *Store) Open(ctx context.Context, sum string) (io.ReadSeekCloser, error) {
	if !blob.ValidSum(sum) {
		return nil, fmt.Errorf("%w: malformed sha256 %q", blob.ErrNotFound, sum)
	}
	var size int64
	err := s.pool.QueryRow(ctx, `SELECT size FROM blobs WHERE sha256 = $1`, sum).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", blob.ErrNotFound, sum)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", sum, err)
	}
	return &reader{ctx: ctx, pool: s.pool, sum: sum, size: size}, nil
}

// Remove deletes a committed blob; removing a missing blob is not an error.
func (s *Store) Remove(ctx context.Context, sum string) error {
	if !blob.ValidSum(sum) {
		return fmt.Errorf("%w: malformed sha256 %q", blob.ErrNotFound, sum)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM blobs WHERE sha256 = $1`, sum); err != nil {
		return fmt.Errorf("remove blob %s: %w", sum, err)
	}
	return nil
}

// walkPage is how many blobs Walk lists per query.
var walkPage = 1000

// Walk calls fn for every committed blob, a page at a time in order of
// sum: no connection is held while fn runs (the garbage collector's fn
// queries the store), and blobs committed or removed meanwhile are
// listed or not, as with a directory.
func (s *Store) Walk(ctx context.Context, fn func(sum string, size int64, committed time.Time) error) error {
	type entry struct {
		sum       string
		size      int64
		committed time.Time
	}
	after := ""
	for {
		rows, _ := s.pool.Query(ctx, `SELECT sha256, size, committed_at FROM blobs
			WHERE sha256 > $1 ORDER BY sha256 LIMIT $2`, after, walkPage)
		page, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (e entry, err error) {
			return e, row.Scan(&e.sum, &e.size, &e.committed)
		})
		if err != nil {
			return fmt.Errorf("list blobs: %w", err)
		}
		for _, e := range page {
			if err := fn(e.sum, e.size, e.committed); err != nil {
				return err
			}
		}
		if len(page) < walkPage {
			return nil
		}
		after = page[len(page)-1].sum
	}
}

// writer stages a blob in an unlinked temporary file until Commit.
type writer struct {
	s     *Store
	f     *os.File
	hash  hash.Hash
	n     int64
	limit int64
	done  bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.limit {
		return 0, fmt.Errorf("%w of %d bytes", blob.ErrTooLarge, w.limit)
	}
	n, err := w.f.Write(p)
	w.hash.Write(p[:n])
	w.n += int64(n)
	return n, err
}

func (w *writer) Size() int64 { return w.n }

func (w *writer) Reader() *io.SectionReader { return io.NewSectionReader(w.f, 0, w.n) }

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

// testHookCopyData wraps the bytes Commit streams to the backend pid;
// tests use it to kill that backend halfway through.
var testHookCopyData = func(_ uint32, data io.Reader) io.Reader { return data }

// Commit stores the blob as one row, inserted by one statement: a crash
// or a lost connection at any point leaves it whole or absent, never torn.
//
// The statement is COPY, not INSERT: pgx builds an INSERT's parameters in
// memory, so each upload committing would cost its whole size in heap (and
// more), while COPY streams the staged file in 64 KiB messages. COPY has no
// ON CONFLICT, so bytes already stored are found first, and only their
// commit time is updated (garbage collection spares blobs committed
// recently): no bytes are sent again. Two pods committing the same new
// bytes at once both COPY, and the loser's duplicate key means its blob is
// there: one row either way.
func (w *writer) Commit(ctx context.Context) (string, error) {
	if w.done {
		return "", errors.New("blob writer already finished")
	}
	w.done = true
	defer w.f.Close()
	sum := hex.EncodeToString(w.hash.Sum(nil))
	if w.n > MaxSize {
		return "", fmt.Errorf("%w: %d bytes is more than a bytea holds", blob.ErrTooLarge, w.n)
	}
	tag, err := w.s.pool.Exec(ctx, `UPDATE blobs SET committed_at = now() WHERE sha256 = $1`, sum)
	if err != nil {
		return "", fmt.Errorf("touch blob %s: %w", sum, err)
	}
	if tag.RowsAffected() == 1 {
		return sum, nil
	}
	conn, err := w.s.pool.Acquire(ctx)
	if err != nil {
		return "", fmt.Errorf("store blob %s: %w", sum, err)
	}
	defer conn.Release()
	pg := conn.Conn().PgConn()
	data := testHookCopyData(pg.PID(), io.NewSectionReader(w.f, 0, w.n))
	_, err = pg.CopyFrom(ctx, copyRow(sum, w.n, data), `COPY blobs (sha256, size, data) FROM STDIN (FORMAT binary)`)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == uniqueViolation {
		return sum, nil
	}
	if err != nil {
		return "", fmt.Errorf("store blob %s: %w", sum, err)
	}
	return sum, nil
}

func (w *writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	_ = w.f.Close() // unlinked already: closing frees it
}

// copyRow is one row of COPY's binary format: the signature, flags and
// header extension length; the row's field count, then each field's
// length and bytes (text and bytea as they are, bigint big-endian); and
// the end marker.
func copyRow(sum string, size int64, data io.Reader) io.Reader {
	head := []byte("PGCOPY\n\xff\r\n\x00")
	head = binary.BigEndian.AppendUint32(head, 0) // flags
	head = binary.BigEndian.AppendUint32(head, 0) // header extension length
	head = binary.BigEndian.AppendUint16(head, 3) // fields in the row
	head = binary.BigEndian.AppendUint32(head, uint32(len(sum)))
	head = append(head, sum...)
	head = binary.BigEndian.AppendUint32(head, 8)
	head = binary.BigEndian.AppendUint64(head, uint64(size))
	head = binary.BigEndian.AppendUint32(head, uint32(size))
	end := binary.BigEndian.AppendUint16(nil, 0xffff) // -1: no more rows
	return io.MultiReader(bytes.NewReader(head), data, bytes.NewReader(end))
}

// readChunk is how much of a blob a reader fetches per query: Download
// sends 64 KiB messages, so one query serves sixteen of them.
const readChunk = 1 << 20

// reader reads a blob a chunk at a time, each chunk one query, so memory
// stays flat however large the blob and however many are read at once.
type reader struct {
	ctx    context.Context // the caller's, as for an HTTP request's body
	pool   *pgxpool.Pool
	sum    string
	size   int64
	off    int64                // where the next Read starts
	chunk  pgtype.PreallocBytes // the bytes at offset at; its buffer is reused
	at     int64
	closed bool
}

func (r *reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, os.ErrClosed
	}
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.off < r.at || r.off >= r.at+int64(len(r.chunk)) {
		if err := r.fetch(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.chunk[r.off-r.at:])
	r.off += int64(n)
	return n, nil
}

// fetch reads the chunk that starts at r.off (substring counts from 1).
func (r *reader) fetch() error {
	want := min(readChunk, r.size-r.off)
	buf := r.chunk[:cap(r.chunk)]
	err := r.pool.QueryRow(r.ctx, `SELECT substring(data FROM $2 FOR $3) FROM blobs WHERE sha256 = $1`,
		r.sum, r.off+1, want).Scan(&buf)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s was removed while being read", blob.ErrNotFound, r.sum)
	}
	if err != nil {
		return fmt.Errorf("read blob %s: %w", r.sum, err)
	}
	if int64(len(buf)) != want {
		return fmt.Errorf("read blob %s: %d bytes at %d, want %d: %w", r.sum, len(buf), r.off, want, io.ErrUnexpectedEOF)
	}
	r.chunk, r.at = buf, r.off
	return nil
}

func (r *reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	r.off = offset
	return offset, nil
}

func (r *reader) Close() error {
	r.closed, r.chunk = true, nil
	return nil
}
