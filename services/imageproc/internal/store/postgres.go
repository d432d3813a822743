package store

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/postgres/*.sql
var pgMigrations embed.FS

// Postgres is the Store for Kubernetes: a pgx connection pool to the
// PostgreSQL StatefulSet (or a managed database).
type Postgres struct {
	pool        *pgxpool.Pool
	maxAttempts int
}

// OpenPostgres connects to url (a postgres:// URL or key=value DSN) and
// checks the schema is current; run Migrate first.
func OpenPostgres(ctx context.Context, url string, maxAttempts int) (*Postgres, error) {
	pool, err := NewPool(ctx, url)
	if err != nil {
		return nil, err
	}
	return &Postgres{pool: pool, maxAttempts: maxAttempts}, nil
}

// NewPool opens a connection pool to url as the store does. The blob store
// in PostgreSQL (pgblob) gets a pool of its own: a few large uploads
// committing at once then never hold every connection the metadata
// queries and the readiness check need.
func NewPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may quote the URL, password included: say only what kind of problem it is.
		return nil, errors.New("DATABASE_URL is not a valid PostgreSQL connection string")
	}
	cfg.MaxConnLifetime = 30 * time.Minute
	// A database pod that was replaced leaves its old IP behind: a connect
	// to it gets no answer at all, and without a bound would hang for the
	// kernel's SYN retries (minutes) instead of trying the new address.
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	cfg.ConnConfig.Tracer = newPgTracer()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres pool: %w", err)
	}
	return pool, nil
}

// Migrate applies the embedded migrations not yet applied. It holds an
// advisory lock for the duration, so concurrent callers (several pods'
// initContainers) apply each migration once.
func (p *Postgres) Migrate(ctx context.Context) (applied []string, err error) {
	names, err := fs.Glob(pgMigrations, "migrations/postgres/*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin migration: %w", err)
	}
	defer tx.Rollback(ctx)         //nolint:errcheck // a no-op after Commit
	const lockKey = 0x6b75626c6162 // "kublab"
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey); err != nil {
		return nil, fmt.Errorf("take migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, name := range names {
		version := strings.TrimSuffix(name[strings.LastIndexByte(name, '/')+1:], ".sql")
		var done bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, version).Scan(&done); err != nil {
			return nil, fmt.Errorf("check migration %s: %w", version, err)
		}
		if done {
			continue
		}
		sql, _ := pgMigrations.ReadFile(name)
		if _, err := tx.Exec(ctx, string(sql)); err != nil {
			return nil, fmt.Errorf("apply migration %s: %w", version, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version); err != nil {
			return nil, fmt.Errorf("record migration %s: %w", version, err)
		}
		applied = append(applied, version)
	}
	return applied, tx.Commit(ctx)
}

// CheckSchema fails unless every embedded migration has been applied: a
// pod must not serve against a database its code does not understand.
func (p *Postgres) CheckSchema(ctx context.Context) error {
	names, _ := fs.Glob(pgMigrations, "migrations/postgres/*.sql")
	var n int
	err := p.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n)
	if err != nil {
		return fmt.Errorf("read schema version (has `imageproc migrate` run?): %w", err)
	}
	if n < len(names) {
		return fmt.Errorf("database has %d of %d migrations; run `imageproc migrate`", n, len(names))
	}
	return nil
}

func (p *Postgres) Ping(ctx context.Context) error { return p.pool.Ping(ctx) }
func (p *Postgres) Close()                         { p.pool.Close() }

const imageCols = `id, filename, content_type, size_bytes, width, height, sha256, created_at, delete_token_hash, decode_error`

func scanImage(row pgx.Row) (Image, error) {
	var i Image
	err := row.Scan(&i.ID, &i.Filename, &i.ContentType, &i.SizeBytes, &i.Width, &i.Height, &i.SHA256, &i.CreatedAt, &i.DeleteTokenHash, &i.DecodeError)
	return i, err
}

func (p *Postgres) CreateImage(ctx context.Context, img Image) (Image, error) {
	row := p.pool.QueryRow(ctx, `INSERT INTO images (id, filename, content_type, size_bytes, width, height, sha256, delete_token_hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+imageCols,
		img.ID, img.Filename, img.ContentType, img.SizeBytes, img.Width, img.Height, img.SHA256, img.DeleteTokenHash)
	out, err := scanImage(row)
	if err != nil {
		return Image{}, fmt.Errorf("insert image: %w", err)
	}
	return out, nil
}

func (p *Postgres) GetImage(ctx context.Context, id string) (Image, error) {
	img, err := scanImage(p.pool.QueryRow(ctx, `SELECT `+imageCols+` FROM images WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Image{}, notFound("image", id)
	}
	if err != nil {
		return Image{}, fmt.Errorf("get image: %w", err)
	}
	return img, nil
}

func (p *Postgres) ListImages(ctx context.Context, limit int, after string) ([]Image, error) {
	rows, err := p.pool.Query(ctx, `SELECT `+imageCols+` FROM images
		WHERE ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $1`, limit, after)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	imgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Image, error) { return scanImage(r) })
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	return imgs, nil
}

func (p *Postgres) DeleteImage(ctx context.Context, id string) ([]string, error) {
	var sums []string
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT sha256 FROM variants WHERE image_id = $1`, id)
		if err != nil {
			return err
		}
		if sums, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		var sum string
		err = tx.QueryRow(ctx, `DELETE FROM images WHERE id = $1 RETURNING sha256`, id).Scan(&sum)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("image", id)
		}
		sums = append(sums, sum)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delete image: %w", err)
	}
	return sums, nil
}

func (p *Postgres) RecordDecodeError(ctx context.Context, sum, why string) error {
	if _, err := p.pool.Exec(ctx, `UPDATE images SET decode_error = $2 WHERE sha256 = $1`, sum, why); err != nil {
		return fmt.Errorf("record decode error: %w", err)
	}
	return nil
}

func (p *Postgres) BlobInUse(ctx context.Context, sum string) (bool, error) {
	var used bool
	err := p.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM images WHERE sha256 = $1)
		OR EXISTS (SELECT 1 FROM variants WHERE sha256 = $1)`, sum).Scan(&used)
	if err != nil {
		return false, fmt.Errorf("check blob use: %w", err)
	}
	return used, nil
}

func (p *Postgres) ExpireVariants(ctx context.Context, before time.Time, keep []string) ([]string, error) {
	rows, err := p.pool.Query(ctx, `DELETE FROM variants WHERE created_at < $1 AND NOT (spec = ANY($2)) RETURNING sha256`, before, keep)
	if err != nil {
		return nil, fmt.Errorf("expire variants: %w", err)
	}
	sums, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("expire variants: %w", err)
	}
	return sums, nil
}

const variantCols = `image_id, spec, content_type, size_bytes, width, height, sha256, created_at`

func scanVariant(row pgx.Row) (Variant, error) {
	var v Variant
	err := row.Scan(&v.ImageID, &v.Spec, &v.ContentType, &v.SizeBytes, &v.Width, &v.Height, &v.SHA256, &v.CreatedAt)
	return v, err
}

func (p *Postgres) PutVariant(ctx context.Context, v Variant) (Variant, bool, error) {
	out, err := scanVariant(p.pool.QueryRow(ctx, `INSERT INTO variants (image_id, spec, content_type, size_bytes, width, height, sha256)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (image_id, spec) DO NOTHING RETURNING `+variantCols,
		v.ImageID, v.Spec, v.ContentType, v.SizeBytes, v.Width, v.Height, v.SHA256))
	if err == nil {
		return out, true, nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
		return Variant{}, false, notFound("image", v.ImageID)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Variant{}, false, fmt.Errorf("insert variant: %w", err)
	}
	existing, err := p.GetVariant(ctx, v.ImageID, v.Spec)
	return existing, false, err
}

func (p *Postgres) GetVariant(ctx context.Context, imageID, spec string) (Variant, error) {
	v, err := scanVariant(p.pool.QueryRow(ctx, `SELECT `+variantCols+` FROM variants WHERE image_id = $1 AND spec = $2`, imageID, spec))
	if errors.Is(err, pgx.ErrNoRows) {
		return Variant{}, notFound("variant", imageID+" "+spec)
	}
	if err != nil {
		return Variant{}, fmt.Errorf("get variant: %w", err)
	}
	return v, nil
}

func (p *Postgres) ListVariants(ctx context.Context, imageID string) ([]Variant, error) {
	rows, err := p.pool.Query(ctx, `SELECT `+variantCols+` FROM variants WHERE image_id = $1 ORDER BY created_at, spec`, imageID)
	if err != nil {
		return nil, fmt.Errorf("list variants: %w", err)
	}
	vs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Variant, error) { return scanVariant(r) })
	if err != nil {
		return nil, fmt.Errorf("list variants: %w", err)
	}
	return vs, nil
}

func (p *Postgres) CreateBatch(ctx context.Context, id, spec string, imageIDs []string) (Batch, error) {
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO batches (id, spec, traceparent) VALUES ($1, $2, $3)`, id, spec, traceparent(ctx)); err != nil {
			return err
		}
		if len(imageIDs) == 0 {
			_, err := tx.Exec(ctx, `INSERT INTO tasks (batch_id, image_id, spec) SELECT $1, id, $2 FROM images ORDER BY id`, id, spec)
			return err
		}
		var missing []string
		err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(x), '{}') FROM unnest($1::text[]) AS x
			WHERE NOT EXISTS (SELECT 1 FROM images WHERE images.id = x)`, imageIDs).Scan(&missing)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return notFound("image", missing[0])
		}
		_, err = tx.Exec(ctx, `INSERT INTO tasks (batch_id, image_id, spec)
			SELECT $1, x, $2 FROM unnest($3::text[]) WITH ORDINALITY AS u(x, n) ORDER BY n`, id, spec, imageIDs)
		return err
	})
	if err != nil {
		return Batch{}, fmt.Errorf("create batch: %w", err)
	}
	return p.GetBatch(ctx, id)
}

// queueMissingSQL is one statement however many images there are: the
// variants' primary key and tasks_image answer each NOT EXISTS by index.
const queueMissingSQL = `INSERT INTO tasks (batch_id, image_id, spec)
	SELECT $1, i.id, $2 FROM images i
	WHERE NOT EXISTS (SELECT 1 FROM variants v WHERE v.image_id = i.id AND v.spec = $2)
	  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.image_id = i.id AND t.spec = $2 AND t.state IN ('pending', 'leased'))
	ORDER BY i.id`

// errNothingQueued rolls back a batch that would be empty or is a dry run.
var errNothingQueued = errors.New("nothing queued")

func (p *Postgres) QueueMissing(ctx context.Context, id, spec string, dryRun bool) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// Two runs at once (a manual Job beside the scheduled one) would
		// each see the other's tasks as not yet there; one at a time per
		// spec, the second sees them committed and queues nothing twice.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('queue missing ' || $1::text))`, spec); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO batches (id, spec, traceparent) VALUES ($1, $2, $3)`, id, spec, traceparent(ctx)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, queueMissingSQL, id, spec)
		if err != nil {
			return err
		}
		if n = int(tag.RowsAffected()); n == 0 || dryRun {
			return errNothingQueued
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNothingQueued) {
		return 0, fmt.Errorf("queue missing variants: %w", err)
	}
	return n, nil
}

func (p *Postgres) GetBatch(ctx context.Context, id string) (Batch, error) {
	b := Batch{ID: id}
	err := p.pool.QueryRow(ctx, `SELECT b.spec, b.created_at,
			count(t.id),
			count(t.id) FILTER (WHERE t.state = 'pending'),
			count(t.id) FILTER (WHERE t.state = 'leased'),
			count(t.id) FILTER (WHERE t.state = 'done'),
			count(t.id) FILTER (WHERE t.state = 'failed')
		FROM batches b LEFT JOIN tasks t ON t.batch_id = b.id
		WHERE b.id = $1 GROUP BY b.id`, id).
		Scan(&b.Spec, &b.CreatedAt, &b.Total, &b.Pending, &b.Leased, &b.Done, &b.Failed)
	if errors.Is(err, pgx.ErrNoRows) {
		return Batch{}, notFound("batch", id)
	}
	if err != nil {
		return Batch{}, fmt.Errorf("get batch: %w", err)
	}
	return b, nil
}

const taskCols = `id, batch_id, image_id, spec, state, attempts, coalesce(lease_owner, ''), lease_expires_at, last_error`

func scanTask(row pgx.Row) (Task, error) {
	var t Task
	var expires *time.Time // NULL unless leased
	err := row.Scan(&t.ID, &t.BatchID, &t.ImageID, &t.Spec, &t.State, &t.Attempts, &t.LeaseOwner, &expires, &t.LastError, &t.BatchTraceparent)
	if expires != nil {
		t.LeaseExpiresAt = *expires
	}
	return t, err
}

// ClaimTasks uses FOR UPDATE SKIP LOCKED: concurrent claimers each lock
// different rows instead of waiting for (or double-taking) the same ones.
// Lease times come from the database clock, so workers' clocks never matter.
func (p *Postgres) ClaimTasks(ctx context.Context, c Claim) ([]Task, error) {
	var tasks []Task
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE tasks SET state = 'failed', last_error = $2, lease_owner = NULL
			WHERE state = 'leased' AND lease_expires_at < now() AND attempts >= $1`, p.maxAttempts, reasonExpired); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, claimSQL,
			c.Worker, c.Max, c.ShardCount, c.ShardIndex, c.Lease)
		if err != nil {
			return err
		}
		tasks, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Task, error) { return scanTask(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim tasks: %w", err)
	}
	slices.SortFunc(tasks, func(a, b Task) int { return cmp.Compare(a.ID, b.ID) })
	return tasks, nil
}

func (p *Postgres) OpenTasks(ctx context.Context, shardIndex, shardCount int) (int, error) {
	var n int
	err := p.pool.QueryRow(ctx, `SELECT count(*) FROM tasks WHERE state IN ('pending', 'leased') AND ($1 = 0 OR id % $1 = $2)`,
		shardCount, shardIndex).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count open tasks: %w", err)
	}
	return n, nil
}

// claimSQL leases the next tasks: pending ones whose retry time has come
// and leased ones whose lease has expired. The inner SELECT walks the
// tasks_open partial index in id order and skips rows other claimers hold
// locked.
const claimSQL = `WITH picked AS (
		SELECT id AS pick FROM tasks
		WHERE state IN ('pending', 'leased')
		  AND (state = 'pending' AND (not_before IS NULL OR not_before <= now())
		       OR state = 'leased' AND lease_expires_at < now())
		  AND ($3 = 0 OR id % $3 = $4)
		ORDER BY id
		LIMIT $2
		FOR UPDATE SKIP LOCKED)
	UPDATE tasks t SET state = 'leased', lease_owner = $1,
		lease_expires_at = now() + $5::interval, attempts = attempts + 1
	FROM picked WHERE t.id = picked.pick
	RETURNING ` + taskCols + `, (SELECT traceparent FROM batches b WHERE b.id = t.batch_id)`

// held is the condition for a worker still holding a task's lease.
const held = `id = $1 AND state = 'leased' AND lease_owner = $2 AND lease_expires_at >= now()`

func (p *Postgres) RenewLease(ctx context.Context, taskID int64, worker string, lease time.Duration) (time.Time, error) {
	var until time.Time
	err := p.pool.QueryRow(ctx, `UPDATE tasks SET lease_expires_at = now() + $3::interval WHERE `+held+` RETURNING lease_expires_at`,
		taskID, worker, lease).Scan(&until)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, leaseLost(taskID, worker)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("renew lease: %w", err)
	}
	return until, nil
}

func (p *Postgres) exec1(ctx context.Context, taskID int64, worker, sql string, args ...any) error {
	tag, err := p.pool.Exec(ctx, sql, append([]any{taskID, worker}, args...)...)
	if err != nil {
		return fmt.Errorf("update task %d: %w", taskID, err)
	}
	if tag.RowsAffected() == 0 {
		return leaseLost(taskID, worker)
	}
	return nil
}

func (p *Postgres) CompleteTask(ctx context.Context, taskID int64, worker string) error {
	return p.exec1(ctx, taskID, worker, `UPDATE tasks SET state = 'done', lease_owner = NULL, lease_expires_at = NULL WHERE `+held)
}

func (p *Postgres) FailTask(ctx context.Context, taskID int64, worker, msg string, retryAfter time.Duration) (TaskState, error) {
	var st TaskState
	err := p.pool.QueryRow(ctx, `UPDATE tasks SET
			state = CASE WHEN attempts >= $3 THEN 'failed' ELSE 'pending' END,
			last_error = $4, lease_owner = NULL, lease_expires_at = NULL, not_before = now() + $5::interval
		WHERE `+held+` RETURNING state`, taskID, worker, p.maxAttempts, msg, retryAfter).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", leaseLost(taskID, worker)
	}
	if err != nil {
		return "", fmt.Errorf("fail task: %w", err)
	}
	return st, nil
}

func (p *Postgres) ReleaseTask(ctx context.Context, taskID int64, worker string) error {
	return p.exec1(ctx, taskID, worker, `UPDATE tasks SET state = 'pending', attempts = attempts - 1,
		lease_owner = NULL, lease_expires_at = NULL WHERE `+held)
}
