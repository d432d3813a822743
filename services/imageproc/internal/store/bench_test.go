package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubelab/kubelab/services/platform/pgtest"
)

// BenchmarkClaimPostgres claims and completes tasks one at a time from a
// queue of 100k on a real PostgreSQL, and logs the claim query's plan to
// show it walks the tasks_open index rather than scanning the table.
func BenchmarkClaimPostgres(b *testing.B) {
	const queued = 100_000
	ctx := context.Background()
	srv := pgtest.Start(b)
	pg, err := OpenPostgres(ctx, srv.URL(b, "claimbench"), DefaultMaxAttempts)
	if err != nil {
		b.Fatal(err)
	}
	defer pg.Close()
	if _, err := pg.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	// Bulk-load the queue in SQL: a benchmark of claims, not of inserts.
	// Half of it already done, as in a queue that has been in use.
	setup := fmt.Sprintf(`
		INSERT INTO images (id, filename, content_type, size_bytes, width, height, sha256)
			SELECT 'img' || g, 'x.jpg', 'image/jpeg', 1, 1, 1, 'sum' FROM generate_series(1, %[1]d) g;
		INSERT INTO batches (id, spec) VALUES ('bench', 'thumbnail(256)|format(jpeg,85)');
		INSERT INTO tasks (batch_id, image_id, spec, state)
			SELECT 'bench', 'img' || g, 'thumbnail(256)|format(jpeg,85)', CASE WHEN g <= %[1]d / 2 THEN 'done' ELSE 'pending' END
			FROM generate_series(1, %[1]d) g;
		ANALYZE;`, queued)
	if _, err := pg.pool.Exec(ctx, setup); err != nil {
		b.Fatal(err)
	}
	rows, err := pg.pool.Query(ctx, "EXPLAIN "+claimSQL, "w", 1, 0, 0, "60 seconds")
	if err != nil {
		b.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("claim plan:\n%s", strings.Join(plan, "\n"))
	if !strings.Contains(strings.Join(plan, "\n"), "tasks_open") {
		b.Fatal("the claim query does not use the tasks_open index")
	}

	b.ResetTimer()
	for b.Loop() {
		tasks, err := pg.ClaimTasks(ctx, Claim{Worker: "w", Max: 1, Lease: time.Minute})
		if err != nil || len(tasks) != 1 {
			b.Fatalf("claim: %v %v", tasks, err)
		}
		if err := pg.CompleteTask(ctx, tasks[0].ID, "w"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims+completes/s")
}
