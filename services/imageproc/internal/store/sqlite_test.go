//go:build !nosqlite

package store

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// A file written before the schema was versioned (`make run`'s .data from an
// older kubelab) opens, is brought up to date, and keeps its queue.
func TestSQLiteUpgradesAnOlderFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = old.ExecContext(t.Context(), sqliteSchema+`
		INSERT INTO images VALUES ('img', 'a.jpg', 'image/jpeg', 1, 1, 1, 'sum', 0);
		INSERT INTO batches VALUES ('b', 's', 0);
		INSERT INTO tasks (batch_id, image_id, spec) VALUES ('b', 'img', 's');`)
	if cerr := old.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	for range 2 { // a second open finds nothing to do
		s, err := OpenSQLite(t.Context(), path, 3)
		if err != nil {
			t.Fatal(err)
		}
		var version int
		if err := s.db.QueryRowContext(t.Context(), `PRAGMA user_version`).Scan(&version); err != nil || version != len(sqliteMigrations) {
			t.Fatalf("user_version = %d, %v; want %d", version, err, len(sqliteMigrations))
		}
		s.Close()
	}
	s, err := OpenSQLite(t.Context(), path, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts, err := s.ClaimTasks(t.Context(), Claim{Worker: "w", Max: 1, Lease: time.Minute})
	if err != nil || len(ts) != 1 {
		t.Fatalf("the old file's task: %v, %v", ts, err)
	}
	if st, err := s.FailTask(t.Context(), ts[0].ID, "w", "x", time.Hour); err != nil || st != Pending {
		t.Fatalf("fail = %v, %v", st, err)
	}
}
