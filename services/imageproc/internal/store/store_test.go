package store_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kubelab/kubelab/services/imageproc/internal/store"
	"github.com/kubelab/kubelab/services/imageproc/internal/store/storetest"
	"github.com/kubelab/kubelab/services/platform/pgtest"
)

func TestSQLiteContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, maxAttempts int) store.Store {
		s, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "meta.db"), maxAttempts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	})
}

func TestPostgresContract(t *testing.T) {
	srv := pgtest.Start(t)
	var n atomic.Int32
	storetest.Run(t, func(t *testing.T, maxAttempts int) store.Store {
		return openPostgres(t, srv.URL(t, fmt.Sprint("contract", n.Add(1))), maxAttempts)
	})
}

func openPostgres(t *testing.T, url string, maxAttempts int) *store.Postgres {
	t.Helper()
	s, err := store.OpenPostgres(t.Context(), url, maxAttempts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.CheckSchema(t.Context()); err == nil {
		t.Fatal("CheckSchema passed before Migrate")
	}
	applied, err := s.Migrate(t.Context())
	if err != nil || len(applied) == 0 {
		t.Fatalf("Migrate = %v, %v", applied, err)
	}
	if again, err := s.Migrate(t.Context()); err != nil || len(again) != 0 {
		t.Fatalf("second Migrate = %v, %v; want nothing applied", again, err)
	}
	if err := s.CheckSchema(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOpenPostgresHidesPassword(t *testing.T) {
	_, err := store.OpenPostgres(t.Context(), "postgres://u:hunter2@host:notaport/db", 3)
	if err == nil {
		t.Fatal("want error")
	}
	if s := err.Error(); strings.Contains(s, "hunter2") {
		t.Fatalf("error leaks the password: %s", s)
	}
}
