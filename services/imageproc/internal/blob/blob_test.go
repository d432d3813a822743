package blob_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/imageproc/internal/blob"
	"github.com/kubelab/kubelab/services/imageproc/internal/blob/blobtest"
)

func TestDirContract(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blobtest.Subject {
		root := t.TempDir()
		d, err := blob.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		return blobtest.Subject{
			Store: d,
			Backdate: func(t *testing.T, sum string, at time.Time) {
				if err := os.Chtimes(filepath.Join(root, "sha256", sum[:2], sum), at, at); err != nil {
					t.Fatal(err)
				}
			},
			Staged: func(t *testing.T) int { return countFiles(t, filepath.Join(root, "tmp")) },
		}
	})
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && e.Name() != ".lock" {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCommitIsContentAddressed(t *testing.T) {
	root := t.TempDir()
	d, err := blob.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	data := []byte("a photo, honestly")
	want := sha256.Sum256(data)

	for range 2 { // the same content twice stores one blob
		w, err := d.Create(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		sum, err := w.Commit(t.Context())
		if err != nil || sum != hex.EncodeToString(want[:]) {
			t.Fatalf("Commit = %q, %v", sum, err)
		}
		w.Abort() // after Commit: harmless
	}
	if n := countFiles(t, filepath.Join(root, "sha256")); n != 1 {
		t.Fatalf("%d blobs stored, want 1", n)
	}
	if n := countFiles(t, filepath.Join(root, "tmp")); n != 0 {
		t.Fatalf("%d temp files left", n)
	}
	f, err := d.Open(t.Context(), hex.EncodeToString(want[:]))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	_ = f.Close()
	if string(got) != string(data) {
		t.Fatalf("read back %q", got)
	}
}

func TestLimitAndAbort(t *testing.T) {
	root := t.TempDir()
	d, err := blob.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w, err := d.Create(10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 8)); !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	w.Abort()
	if n := countFiles(t, root); n != 0 {
		t.Fatalf("%d files left after Abort", n)
	}
}

func TestOpenSweepsDeadProcessesOnly(t *testing.T) {
	root := t.TempDir()
	live, err := blob.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	w, err := live.Create(100)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	_, _ = w.Write([]byte("in flight"))

	// A crashed process: its tmp dir with a partial upload and no lock holder.
	dead := filepath.Join(root, "tmp", "proc-dead")
	if err := os.MkdirAll(dead, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, "partial"), []byte("half"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, ".lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	second, err := blob.Open(root) // a second pod starting on the shared volume
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatal("dead process's tmp dir was not swept")
	}
	if _, err := w.Commit(t.Context()); err != nil {
		t.Fatalf("live process's upload was disturbed: %v", err)
	}
}

// A directory still being set up (".new-") is another pod starting: left
// alone. One an hour old is a pod that died in that moment: removed.
func TestOpenSweepsOnlyStaleUnfinishedDirs(t *testing.T) {
	root := t.TempDir()
	young, stale := filepath.Join(root, "tmp", ".new-young"), filepath.Join(root, "tmp", ".new-stale")
	for _, dir := range []string{young, stale} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	d, err := blob.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := os.Stat(young); err != nil {
		t.Fatalf("a directory being set up was swept: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatal("a stale unfinished directory was not swept")
	}
}

func TestOpenRejectsMalformedSums(t *testing.T) {
	d, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, sum := range []string{"", "../../etc/passwd", "zz" + string(make([]byte, 62))} {
		if _, err := d.Open(t.Context(), sum); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Open(%q) = %v, want ErrNotFound", sum, err)
		}
	}
}
