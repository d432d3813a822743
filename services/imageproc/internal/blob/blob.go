// Package blob keeps photos and variants on a filesystem volume (in
// Kubernetes, a PersistentVolumeClaim), named by the SHA-256 of their bytes,
// and defines Store, what the server needs from any blob storage (package
// pgblob keeps them in PostgreSQL instead).
//
// Content addressing makes writes idempotent (the same bytes always land on
// the same name) and lets a reader trust what it reads. Writes are
// crash-safe: bytes go to a temporary file that is fsynced, renamed into
// place and then the directory is fsynced, so after a crash a blob is either
// whole or absent, never torn.
package blob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrTooLarge is returned by Writer.Write past the writer's limit.
var ErrTooLarge = errors.New("blob exceeds size limit")

// ErrNotFound is returned for a blob that does not exist.
var ErrNotFound = errors.New("blob not found")

// Dir is a blob directory:
//
//	sha256/ab/abcdef…   committed blobs, fanned out by the first two hex digits
//	tmp/proc-<hex>/     one process's uploads in progress, and its .lock
//	tmp/.new-<hex>/     the same directory while it is being set up
//
// Each <hex> is 16 random hex digits, and so is the name of each upload in
// a proc- directory. Several pods may share the volume. Each process writes
// only into its own tmp directory and holds an flock on its .lock; at start
// a process removes every entry of tmp whose .lock no process holds (its
// owner has died), except a .new- directory less than stagingMaxAge old. A
// new directory is made as .new-<hex> and locked before it is renamed to
// proc-<hex>, so a sweep never finds one that is alive but not yet locked.
type Dir struct {
	root string
	tmp  string
	lock *os.File
}

var _ Store = (*Dir)(nil)

// Open prepares root and sweeps what crashed processes left behind.
func Open(root string) (*Dir, error) {
	for _, d := range []string{"sha256", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o750); err != nil {
			return nil, fmt.Errorf("create blob dir: %w", err)
		}
	}
	if err := sweep(filepath.Join(root, "tmp")); err != nil {
		return nil, err
	}
	tmp, lock, err := newTmp(filepath.Join(root, "tmp"))
	if err != nil {
		return nil, err
	}
	return &Dir{root: root, tmp: tmp, lock: lock}, nil
}

const (
	// stagingPrefix names a tmp directory still being set up: sweep
	// leaves it alone until it is stagingMaxAge old, far longer than the
	// microseconds its setup takes, so only a process that died within
	// them leaves one for sweep to remove.
	stagingPrefix = ".new-"
	stagingMaxAge = time.Hour
)

// testHookBeforeLock runs between creating a tmp directory and locking
// it; tests hold that moment open to race a sweep against it.
var testHookBeforeLock = func(dir string) {}

// newTmp makes this process's tmp directory, locked before it is visible
// under its proc- name. Made and then locked under that name, it could be
// swept by a pod starting in between: that pod would take the lock nobody
// held yet and delete the directory under its owner.
func newTmp(tmpRoot string) (string, *os.File, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := hex.EncodeToString(rnd[:])
	staging := filepath.Join(tmpRoot, stagingPrefix+name)
	if err := os.Mkdir(staging, 0o750); err != nil {
		return "", nil, fmt.Errorf("create tmp dir: %w", err)
	}
	testHookBeforeLock(staging)
	lock, err := os.OpenFile(filepath.Join(staging, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		_ = os.RemoveAll(staging)
		return "", nil, fmt.Errorf("create tmp lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		_ = os.RemoveAll(staging)
		return "", nil, fmt.Errorf("lock tmp dir: %w", err)
	}
	// The lock belongs to the open file, not the name: it survives the rename.
	final := filepath.Join(tmpRoot, "proc-"+name)
	if err := os.Rename(staging, final); err != nil {
		_ = lock.Close()
		_ = os.RemoveAll(staging)
		return "", nil, fmt.Errorf("publish tmp dir: %w", err)
	}
	return final, lock, nil
}

// sweep removes the tmp directories of processes that no longer run.
func sweep(tmpRoot string) error {
	entries, err := os.ReadDir(tmpRoot)
	if err != nil {
		return fmt.Errorf("list tmp: %w", err)
	}
	for _, e := range entries {
		dir := filepath.Join(tmpRoot, e.Name())
		if strings.HasPrefix(e.Name(), stagingPrefix) {
			info, err := e.Info()
			if err != nil || time.Since(info.ModTime()) < stagingMaxAge {
				continue // being set up right now, or gone already
			}
		}
		if held(dir) {
			continue // a live process owns it
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove leftover %s: %w", dir, err)
		}
	}
	return nil
}

// held reports whether a live process holds dir's lock.
func held(dir string) bool {
	f, err := os.Open(filepath.Join(dir, ".lock"))
	if err != nil {
		return false
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil
}

// Close releases this process's tmp directory.
func (d *Dir) Close() error {
	err := os.RemoveAll(d.tmp)
	return errors.Join(err, d.lock.Close())
}

func (d *Dir) path(sum string) (string, error) {
	if !ValidSum(sum) {
		return "", fmt.Errorf("%w: malformed sha256 %q", ErrNotFound, sum)
	}
	return filepath.Join(d.root, "sha256", sum[:2], sum), nil
}

// Open opens a committed blob for reading. A file once open reads on
// even if the blob is removed meanwhile.
func (d *Dir) Open(_ context.Context, sum string) (io.ReadSeekCloser, error) {
	p, err := d.path(sum)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, sum)
	}
	if err != nil {
		return nil, err // not a nil *os.File in a non-nil interface
	}
	return f, nil
}

// Remove deletes a committed blob; removing a missing blob is not an error.
func (d *Dir) Remove(_ context.Context, sum string) error {
	p, err := d.path(sum)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove blob %s: %w", sum, err)
	}
	return nil
}

// Walk calls fn with the sum, size and modification time of every
// committed blob (Commit touches a blob it finds already there).
func (d *Dir) Walk(ctx context.Context, fn func(sum string, size int64, modTime time.Time) error) error {
	return filepath.WalkDir(filepath.Join(d.root, "sha256"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while walking
		}
		if err != nil {
			return err
		}
		return fn(e.Name(), info.Size(), info.ModTime())
	})
}

// fileWriter is Dir's Writer: a file in this process's tmp directory,
// renamed into place by Commit.
type fileWriter struct {
	dir   *Dir
	f     *os.File
	hash  hash.Hash
	n     int64
	limit int64
	done  bool
}

// Create starts a blob of at most limit bytes.
func (d *Dir) Create(limit int64) (Writer, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	f, err := os.OpenFile(filepath.Join(d.tmp, hex.EncodeToString(rnd[:])), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create temp blob: %w", err)
	}
	return &fileWriter{dir: d, f: f, hash: sha256.New(), limit: limit}, nil
}

// Write appends p, or fails with ErrTooLarge past the limit.
func (w *fileWriter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.limit {
		return 0, fmt.Errorf("%w of %d bytes", ErrTooLarge, w.limit)
	}
	n, err := w.f.Write(p)
	w.hash.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Size is the number of bytes written so far.
func (w *fileWriter) Size() int64 { return w.n }

// Reader reads back what has been written, for validation before Commit.
func (w *fileWriter) Reader() *io.SectionReader { return io.NewSectionReader(w.f, 0, w.n) }

// Commit makes the blob durable and visible under its SHA-256, which it
// returns. If a blob with the same content exists, the new copy is dropped.
// A rename cannot be cancelled: ctx is not consulted.
func (w *fileWriter) Commit(context.Context) (string, error) {
	if w.done {
		return "", errors.New("blob writer already finished")
	}
	w.done = true
	sum := hex.EncodeToString(w.hash.Sum(nil))
	tmpName := w.f.Name()
	defer os.Remove(tmpName) // no-op after a successful rename
	if err := w.f.Sync(); err != nil {
		_ = w.f.Close()
		return "", fmt.Errorf("sync blob: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return "", fmt.Errorf("close blob: %w", err)
	}
	final, _ := w.dir.path(sum)
	if _, err := os.Stat(final); err == nil {
		// The content is already there. Touch it: garbage collection
		// spares blobs modified recently, and this one is about to be
		// referenced again.
		now := time.Now()
		if err := os.Chtimes(final, now, now); err != nil {
			return "", fmt.Errorf("touch existing blob: %w", err)
		}
		return sum, nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return "", fmt.Errorf("create blob fan-out dir: %w", err)
	}
	if err := os.Rename(tmpName, final); err != nil {
		return "", fmt.Errorf("rename blob into place: %w", err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return "", err
	}
	return sum, nil
}

// Abort discards the blob. Safe to call after Commit (it does nothing), so
// callers can defer it.
func (w *fileWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
}

// syncDir makes a rename durable: without it a crash can lose the new name.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for sync: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
