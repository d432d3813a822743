//go:build !nosqlite

// The embedded store is left out of the cluster images (-tags nosqlite,
// nosqlite.go): the cluster always sets DATABASE_URL, and SQLite is about
// 4.2 MB of imageproc's binary.

package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"modernc.org/sqlite" // pure Go: no cgo, no system library
)

// Embedded reports whether this build has the embedded store, which
// imageproc uses when DATABASE_URL is unset.
const Embedded = true

// sqliteBusy reports whether err is SQLite's "another connection holds the
// file": a retry may succeed (Unavailable).
func sqliteBusy(err error) bool {
	var liteErr *sqlite.Error
	if !errors.As(err, &liteErr) {
		return false
	}
	// The primary result code is the low byte; 5 and 6 are SQLITE_BUSY and
	// SQLITE_LOCKED.
	code := liteErr.Code() & 0xff
	return code == 5 || code == 6
}

// SQLite is the embedded Store: one file, for `make run` and single-pod
// demos. It has the same behaviour as Postgres (the contract tests say so)
// but serialises all access through one connection, which is plenty for
// one process and makes "never one task to two workers" trivially true.
type SQLite struct {
	db          *sql.DB
	maxAttempts int
}

// sqliteMigrations bring a file up to date, in order; PRAGMA user_version
// counts those applied. The first is the original schema, written with IF
// NOT EXISTS because files made before the count existed hold it at 0.
var sqliteMigrations = []string{sqliteSchema, `
ALTER TABLE tasks ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_image ON tasks (image_id);
`, `
ALTER TABLE images ADD COLUMN delete_token_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE images ADD COLUMN decode_error TEXT NOT NULL DEFAULT '';
`, `
ALTER TABLE batches ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
`}

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS images (
	id TEXT PRIMARY KEY, filename TEXT NOT NULL, content_type TEXT NOT NULL,
	size_bytes INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
	sha256 TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS images_sha256 ON images (sha256);
CREATE TABLE IF NOT EXISTS variants (
	image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE, spec TEXT NOT NULL,
	content_type TEXT NOT NULL, size_bytes INTEGER NOT NULL, width INTEGER NOT NULL,
	height INTEGER NOT NULL, sha256 TEXT NOT NULL, created_at INTEGER NOT NULL,
	PRIMARY KEY (image_id, spec));
CREATE INDEX IF NOT EXISTS variants_sha256 ON variants (sha256);
CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, spec TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	batch_id TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
	image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
	spec TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
	lease_owner TEXT NOT NULL DEFAULT '', lease_expires_at INTEGER NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS tasks_open ON tasks (id) WHERE state IN ('pending', 'leased');
CREATE INDEX IF NOT EXISTS tasks_batch ON tasks (batch_id, state);
`

// OpenSQLite opens (creating if needed) the database file at path.
func OpenSQLite(ctx context.Context, path string, maxAttempts int) (*SQLite, error) {
	dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(FULL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	s := &SQLite{db: db, maxAttempts: maxAttempts}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrate sqlite schema in %s: %w", path, err)
	}
	return s, nil
}

func (s *SQLite) migrate(ctx context.Context) error {
	var version int
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return err
	}
	for i := version; i < len(sqliteMigrations); i++ {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, sqliteMigrations[i]); err != nil {
				return err
			}
			// PRAGMA takes no parameters; i+1 is a number we made.
			_, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return nil
}

func (s *SQLite) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }
func (s *SQLite) Close()                         { _ = s.db.Close() }

func nanos(t time.Time) int64     { return t.UnixNano() }
func fromNanos(n int64) time.Time { return time.Unix(0, n) }
func stamp() int64                { return nanos(time.Now()) }
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

type scanner interface{ Scan(...any) error }

func scanImageSQL(r scanner) (Image, error) {
	var i Image
	var at int64
	err := r.Scan(&i.ID, &i.Filename, &i.ContentType, &i.SizeBytes, &i.Width, &i.Height, &i.SHA256, &at, &i.DeleteTokenHash, &i.DecodeError)
	i.CreatedAt = fromNanos(at)
	return i, err
}

func scanVariantSQL(r scanner) (Variant, error) {
	var v Variant
	var at int64
	err := r.Scan(&v.ImageID, &v.Spec, &v.ContentType, &v.SizeBytes, &v.Width, &v.Height, &v.SHA256, &at)
	v.CreatedAt = fromNanos(at)
	return v, err
}

func scanTaskSQL(r scanner) (Task, error) {
	var t Task
	var exp int64
	err := r.Scan(&t.ID, &t.BatchID, &t.ImageID, &t.Spec, &t.State, &t.Attempts, &t.LeaseOwner, &exp, &t.LastError, &t.BatchTraceparent)
	if exp != 0 {
		t.LeaseExpiresAt = fromNanos(exp)
	}
	return t, err
}

func collect[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (s *SQLite) CreateImage(ctx context.Context, img Image) (Image, error) {
	img.CreatedAt = fromNanos(stamp())
	_, err := s.db.ExecContext(ctx, `INSERT INTO images (`+imageCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '')`,
		img.ID, img.Filename, img.ContentType, img.SizeBytes, img.Width, img.Height, img.SHA256, nanos(img.CreatedAt), img.DeleteTokenHash)
	return img, wrap("insert image", err)
}

func (s *SQLite) GetImage(ctx context.Context, id string) (Image, error) {
	img, err := scanImageSQL(s.db.QueryRowContext(ctx, `SELECT `+imageCols+` FROM images WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Image{}, notFound("image", id)
	}
	return img, wrap("get image", err)
}

func (s *SQLite) ListImages(ctx context.Context, limit int, after string) ([]Image, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+imageCols+` FROM images WHERE (?1 = '' OR id < ?1) ORDER BY id DESC LIMIT ?2`, after, limit)
	imgs, err := collect(rows, err, scanImageSQL)
	return imgs, wrap("list images", err)
}

// inTx runs fn in a transaction, committing if it returns nil.
func (s *SQLite) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *SQLite) DeleteImage(ctx context.Context, id string) ([]string, error) {
	var sums []string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT sha256 FROM variants WHERE image_id = ?`, id)
		sums, err = collect(rows, err, func(r scanner) (string, error) {
			var v string
			return v, r.Scan(&v)
		})
		if err != nil {
			return err
		}
		var sum string
		err = tx.QueryRowContext(ctx, `DELETE FROM images WHERE id = ? RETURNING sha256`, id).Scan(&sum)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("image", id)
		}
		sums = append(sums, sum)
		return err
	})
	return sums, wrap("delete image", err)
}

func (s *SQLite) RecordDecodeError(ctx context.Context, sum, why string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE images SET decode_error = ?2 WHERE sha256 = ?1`, sum, why)
	return wrap("record decode error", err)
}

func (s *SQLite) BlobInUse(ctx context.Context, sum string) (bool, error) {
	var used bool
	err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM images WHERE sha256 = ?1)
		OR EXISTS (SELECT 1 FROM variants WHERE sha256 = ?1)`, sum).Scan(&used)
	return used, wrap("check blob use", err)
}

func (s *SQLite) ExpireVariants(ctx context.Context, before time.Time, keep []string) ([]string, error) {
	keepJSON, err := json.Marshal(append([]string{}, keep...))
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `DELETE FROM variants WHERE created_at < ?
		AND spec NOT IN (SELECT value FROM json_each(?)) RETURNING sha256`, nanos(before), string(keepJSON))
	sums, err := collect(rows, err, func(r scanner) (string, error) {
		var v string
		return v, r.Scan(&v)
	})
	return sums, wrap("expire variants", err)
}

func (s *SQLite) PutVariant(ctx context.Context, v Variant) (Variant, bool, error) {
	if _, err := s.GetImage(ctx, v.ImageID); err != nil {
		return Variant{}, false, err
	}
	v.CreatedAt = fromNanos(stamp())
	res, err := s.db.ExecContext(ctx, `INSERT INTO variants VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		v.ImageID, v.Spec, v.ContentType, v.SizeBytes, v.Width, v.Height, v.SHA256, nanos(v.CreatedAt))
	if err != nil {
		return Variant{}, false, wrap("insert variant", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return v, true, nil
	}
	existing, err := s.GetVariant(ctx, v.ImageID, v.Spec)
	return existing, false, err
}

func (s *SQLite) GetVariant(ctx context.Context, imageID, spec string) (Variant, error) {
	v, err := scanVariantSQL(s.db.QueryRowContext(ctx, `SELECT `+variantCols+` FROM variants WHERE image_id = ? AND spec = ?`, imageID, spec))
	if errors.Is(err, sql.ErrNoRows) {
		return Variant{}, notFound("variant", imageID+" "+spec)
	}
	return v, wrap("get variant", err)
}

func (s *SQLite) ListVariants(ctx context.Context, imageID string) ([]Variant, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+variantCols+` FROM variants WHERE image_id = ? ORDER BY created_at, spec`, imageID)
	vs, err := collect(rows, err, scanVariantSQL)
	return vs, wrap("list variants", err)
}

func (s *SQLite) CreateBatch(ctx context.Context, id, spec string, imageIDs []string) (Batch, error) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO batches (id, spec, created_at, traceparent) VALUES (?, ?, ?, ?)`, id, spec, stamp(), traceparent(ctx)); err != nil {
			return err
		}
		if len(imageIDs) == 0 {
			_, err := tx.ExecContext(ctx, `INSERT INTO tasks (batch_id, image_id, spec) SELECT ?, id, ? FROM images ORDER BY id`, id, spec)
			return err
		}
		for _, img := range imageIDs {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM images WHERE id = ?`, img).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return notFound("image", img)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO tasks (batch_id, image_id, spec) VALUES (?, ?, ?)`, id, img, spec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Batch{}, wrap("create batch", err)
	}
	return s.GetBatch(ctx, id)
}

func (s *SQLite) QueueMissing(ctx context.Context, id, spec string, dryRun bool) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO batches (id, spec, created_at, traceparent) VALUES (?, ?, ?, ?)`, id, spec, stamp(), traceparent(ctx)); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO tasks (batch_id, image_id, spec)
			SELECT ?1, i.id, ?2 FROM images i
			WHERE NOT EXISTS (SELECT 1 FROM variants v WHERE v.image_id = i.id AND v.spec = ?2)
			  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.image_id = i.id AND t.spec = ?2 AND t.state IN ('pending', 'leased'))
			ORDER BY i.id`, id, spec)
		if err != nil {
			return err
		}
		affected, err := res.RowsAffected()
		if n = int(affected); err == nil && (n == 0 || dryRun) {
			return errNothingQueued
		}
		return err
	})
	if err != nil && !errors.Is(err, errNothingQueued) {
		return 0, wrap("queue missing variants", err)
	}
	return n, nil
}

func (s *SQLite) GetBatch(ctx context.Context, id string) (Batch, error) {
	b := Batch{ID: id}
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT b.spec, b.created_at, count(t.id),
			count(t.id) FILTER (WHERE t.state = 'pending'), count(t.id) FILTER (WHERE t.state = 'leased'),
			count(t.id) FILTER (WHERE t.state = 'done'), count(t.id) FILTER (WHERE t.state = 'failed')
		FROM batches b LEFT JOIN tasks t ON t.batch_id = b.id WHERE b.id = ? GROUP BY b.id`, id).
		Scan(&b.Spec, &at, &b.Total, &b.Pending, &b.Leased, &b.Done, &b.Failed)
	if errors.Is(err, sql.ErrNoRows) {
		return Batch{}, notFound("batch", id)
	}
	b.CreatedAt = fromNanos(at)
	return b, wrap("get batch", err)
}

const sqliteTaskCols = `id, batch_id, image_id, spec, state, attempts, lease_owner, lease_expires_at, last_error`

func (s *SQLite) ClaimTasks(ctx context.Context, c Claim) ([]Task, error) {
	var tasks []Task
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := stamp()
		if _, err := tx.ExecContext(ctx, `UPDATE tasks SET state = 'failed', last_error = ?, lease_owner = ''
			WHERE state = 'leased' AND lease_expires_at < ? AND attempts >= ?`, reasonExpired, now, s.maxAttempts); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `UPDATE tasks SET state = 'leased', lease_owner = ?1,
				lease_expires_at = ?2, attempts = attempts + 1
			WHERE id IN (SELECT id FROM tasks
				WHERE state IN ('pending', 'leased')
				  AND (state = 'pending' AND not_before <= ?3 OR state = 'leased' AND lease_expires_at < ?3)
				  AND (?4 = 0 OR id % ?4 = ?5)
				ORDER BY id LIMIT ?6)
			RETURNING `+sqliteTaskCols+`, (SELECT traceparent FROM batches WHERE batches.id = tasks.batch_id)`,
			c.Worker, now+c.Lease.Nanoseconds(), now, c.ShardCount, c.ShardIndex, c.Max)
		tasks, err = collect(rows, err, scanTaskSQL)
		return err
	})
	if err != nil {
		return nil, wrap("claim tasks", err)
	}
	slices.SortFunc(tasks, func(a, b Task) int { return cmp.Compare(a.ID, b.ID) })
	return tasks, nil
}

func (s *SQLite) OpenTasks(ctx context.Context, shardIndex, shardCount int) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM tasks WHERE state IN ('pending', 'leased') AND (?1 = 0 OR id % ?1 = ?2)`,
		shardCount, shardIndex).Scan(&n)
	return n, wrap("count open tasks", err)
}

const sqliteHeld = `id = ?1 AND state = 'leased' AND lease_owner = ?2 AND lease_expires_at >= ?3`

func (s *SQLite) update1(ctx context.Context, taskID int64, worker, set string, args ...any) (sql.Result, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE tasks SET `+set+` WHERE `+sqliteHeld,
		append([]any{taskID, worker, stamp()}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("update task %d: %w", taskID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, leaseLost(taskID, worker)
	}
	return res, nil
}

func (s *SQLite) RenewLease(ctx context.Context, taskID int64, worker string, lease time.Duration) (time.Time, error) {
	until := time.Now().Add(lease)
	_, err := s.update1(ctx, taskID, worker, `lease_expires_at = ?4`, nanos(until))
	return until, err
}

func (s *SQLite) CompleteTask(ctx context.Context, taskID int64, worker string) error {
	_, err := s.update1(ctx, taskID, worker, `state = 'done', lease_owner = '', lease_expires_at = 0`)
	return err
}

func (s *SQLite) FailTask(ctx context.Context, taskID int64, worker, msg string, retryAfter time.Duration) (TaskState, error) {
	if _, err := s.update1(ctx, taskID, worker, `state = CASE WHEN attempts >= ?4 THEN 'failed' ELSE 'pending' END,
		last_error = ?5, lease_owner = '', lease_expires_at = 0, not_before = ?3 + ?6`, s.maxAttempts, msg, retryAfter.Nanoseconds()); err != nil {
		return "", err
	}
	var st TaskState
	err := s.db.QueryRowContext(ctx, `SELECT state FROM tasks WHERE id = ?`, taskID).Scan(&st)
	return st, wrap("read task state", err)
}

func (s *SQLite) ReleaseTask(ctx context.Context, taskID int64, worker string) error {
	_, err := s.update1(ctx, taskID, worker, `state = 'pending', attempts = attempts - 1, lease_owner = '', lease_expires_at = 0`)
	return err
}
