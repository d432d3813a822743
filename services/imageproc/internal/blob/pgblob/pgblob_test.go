package pgblob

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kubelab/kubelab/services/imageproc/internal/blob"
	"github.com/kubelab/kubelab/services/imageproc/internal/blob/blobtest"
	"github.com/kubelab/kubelab/services/imageproc/internal/store"
	"github.com/kubelab/kubelab/services/platform/pgtest"
)

// migrated is a pool to a new database that `imageproc migrate` has set up:
// the blobs table is the migrations' own.
func migrated(t *testing.T, srv *pgtest.Server, name string) *pgxpool.Pool {
	t.Helper()
	url := srv.URL(t, name)
	st, err := store.OpenPostgres(t.Context(), url, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	pool, err := store.NewPool(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func entries(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func TestContract(t *testing.T) {
	srv := pgtest.Start(t)
	var n atomic.Int32
	blobtest.Run(t, func(t *testing.T) blobtest.Subject {
		pool := migrated(t, srv, fmt.Sprint("contract", n.Add(1)))
		tmp := t.TempDir()
		return blobtest.Subject{
			Store: New(pool, tmp),
			Backdate: func(t *testing.T, sum string, at time.Time) {
				if _, err := pool.Exec(t.Context(), `UPDATE blobs SET committed_at = $2 WHERE sha256 = $1`, sum, at); err != nil {
					t.Fatal(err)
				}
			},
			Staged: func(t *testing.T) int { return entries(t, tmp) },
		}
	})
}

// Walk pages through the table; blobs on every page are listed once.
func TestWalkPages(t *testing.T) {
	pool := migrated(t, pgtest.Start(t), "pages")
	defer func(n int) { walkPage = n }(walkPage)
	walkPage = 2
	s := New(pool, t.TempDir())
	want := map[string]bool{}
	for i := range 5 {
		w, err := s.Create(10)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fmt.Fprint(w, i)
		sum, err := w.Commit(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want[sum] = true
	}
	got := map[string]bool{}
	err := s.Walk(t.Context(), func(sum string, _ int64, _ time.Time) error {
		if got[sum] {
			t.Errorf("listed %s twice", sum)
		}
		got[sum] = true
		return nil
	})
	if err != nil || len(got) != len(want) {
		t.Fatalf("Walk listed %d of %d blobs: %v", len(got), len(want), err)
	}
}

// The uploading process dies, or loses its connection, half way through
// sending a blob: PostgreSQL aborts the statement, and no part of the
// blob is stored. The backend is terminated from the COPY's own stream,
// when exactly half the bytes have gone: no timing involved.
func TestCommitCutHalfWayLeavesNothing(t *testing.T) {
	pool := migrated(t, pgtest.Start(t), "crash")
	s := New(pool, t.TempDir())
	data := make([]byte, 3<<20)
	_, _ = rand.Read(data)

	terminated, hooked := false, make(chan struct{})
	defer func(hook func(uint32, io.Reader) io.Reader) { testHookCopyData = hook }(testHookCopyData)
	testHookCopyData = func(pid uint32, r io.Reader) io.Reader {
		return io.MultiReader(io.LimitReader(r, int64(len(data)/2)), hookReader(func() {
			defer close(hooked)
			// With a timeout, pg_terminate_backend returns once the
			// backend has exited.
			err := pool.QueryRow(t.Context(), `SELECT pg_terminate_backend($1, 60000)`, int32(pid)).Scan(&terminated)
			if err != nil {
				t.Error(err)
			}
		}), r)
	}
	w, err := s.Create(int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	sum, err := w.Commit(t.Context())
	<-hooked // pgx may return as soon as it reads the backend's farewell
	if err == nil || !terminated {
		t.Fatalf("Commit = %s, %v with the backend terminated %v; want an error", sum, err, terminated)
	}

	var rows int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM blobs`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d rows in blobs after the cut (%v), want none", rows, err)
	}
	testHookCopyData = func(_ uint32, r io.Reader) io.Reader { return r }
	w, err = s.Create(int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if sum, err = w.Commit(t.Context()); err != nil {
		t.Fatalf("Commit after the cut: %v", err)
	}
	r, err := s.Open(t.Context(), sum)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v; want the %d committed", len(got), err, len(data))
	}
}

// hookReader runs fn when first read, and reads as empty.
type hookReader func()

func (h hookReader) Read([]byte) (int, error) {
	h()
	return 0, io.EOF
}

// A reader whose blob is removed under it fails with ErrNotFound at its
// next chunk, rather than returning other bytes or a short blob as whole.
func TestReadOfRemovedBlobFails(t *testing.T) {
	pool := migrated(t, pgtest.Start(t), "removed")
	s := New(pool, t.TempDir())
	data := make([]byte, readChunk+100)
	w, err := s.Create(int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(data)
	sum, err := w.Commit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(t.Context(), sum)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadFull(r, make([]byte, readChunk)); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(t.Context(), sum); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("reading on after Remove = %v, want ErrNotFound", err)
	}
}
