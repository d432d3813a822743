package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// dataLink is the symlink kubelet swaps atomically when a mounted ConfigMap
// or Secret changes: it writes the new files into a fresh timestamped
// directory, points "..data_tmp" at it and renames that over "..data". The
// visible files are symlinks through "..data", so reading through the
// resolved "..data" gives one consistent snapshot.
const dataLink = "..data"

// Snapshot is the content of a watched directory at one moment.
type Snapshot struct {
	// Files maps file names to their contents.
	Files map[string]string
	// Loaded is when this snapshot was read.
	Loaded time.Time
}

// Get returns the trimmed content of file key, or def if there is none.
func (s Snapshot) Get(key, def string) string {
	if v, ok := s.Files[key]; ok {
		return strings.TrimSpace(v)
	}
	return def
}

// Fingerprint identifies the content without revealing it: the first 12 hex
// digits of a SHA-256 over the sorted names and values. Safe to show for a
// Secret: it tells a learner the Secret changed, never what it holds.
func (s Snapshot) Fingerprint() string {
	if len(s.Files) == 0 {
		return "none"
	}
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(s.Files)) {
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(s.Files[k]), s.Files[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func (s Snapshot) equal(o Snapshot) bool {
	return maps.Equal(s.Files, o.Files)
}

// Dir is a watched directory of small files: a mounted ConfigMap or Secret.
// Readers call Snapshot at any time; it never blocks and never returns a
// half-updated directory.
type Dir struct {
	path    string
	log     *slog.Logger
	current atomic.Pointer[Snapshot]

	mu        sync.Mutex
	listeners []func(Snapshot)
}

// maxFileSize bounds what one file may hold: ConfigMaps are capped at 1 MiB.
const maxFileSize = 1 << 20

// OpenDir reads path once; call Watch to follow changes. A missing
// directory is an error: a pod whose volume is missing should not start.
func OpenDir(path string, log *slog.Logger) (*Dir, error) {
	d := &Dir{path: path, log: log}
	snap, err := d.read()
	if err != nil {
		return nil, err
	}
	d.current.Store(&snap)
	return d, nil
}

// Snapshot returns the latest content.
func (d *Dir) Snapshot() Snapshot { return *d.current.Load() }

// OnChange registers fn to be called, from the watching goroutine, with each
// new snapshot.
func (d *Dir) OnChange(fn func(Snapshot)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.listeners = append(d.listeners, fn)
}

// Watch follows the directory until ctx ends. Events are only a hint to
// re-read: a short debounce folds kubelet's several renames into one reload,
// and a slow periodic re-read covers filesystems whose events are lost.
func (d *Dir) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", d.path, err)
	}
	defer w.Close()
	if err := w.Add(d.path); err != nil {
		return fmt.Errorf("watch %s: %w", d.path, err)
	}

	const debounce = 100 * time.Millisecond
	resync := time.NewTicker(30 * time.Second)
	defer resync.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			d.log.Warn("config dir watch error", "dir", d.path, "err", err)
		case _, ok := <-w.Events:
			if !ok {
				return nil
			}
			timer.Reset(debounce)
		case <-timer.C:
			d.reload()
		case <-resync.C:
			d.reload()
		}
	}
}

func (d *Dir) reload() {
	snap, err := d.read()
	if err != nil {
		// Keep serving the last good settings: a broken update must not
		// take the pod down.
		d.log.Warn("config dir reload failed; keeping previous content", "dir", d.path, "err", err)
		return
	}
	if snap.equal(d.Snapshot()) {
		return
	}
	d.current.Store(&snap)
	d.log.Info("config dir reloaded", "dir", d.path, "files", len(snap.Files), "fingerprint", snap.Fingerprint())
	d.mu.Lock()
	listeners := slices.Clone(d.listeners)
	d.mu.Unlock()
	for _, fn := range listeners {
		fn(snap)
	}
}

func (d *Dir) read() (Snapshot, error) {
	root := d.path
	// Resolve ..data once so every file comes from the same generation.
	if resolved, err := filepath.EvalSymlinks(filepath.Join(d.path, dataLink)); err == nil {
		root = resolved
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return Snapshot{}, fmt.Errorf("read config dir %s: %w", d.path, err)
	}
	files := make(map[string]string, len(entries))
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue // kubelet's ..data and timestamped dirs, editor droppings
		}
		p := filepath.Join(root, name)
		info, err := os.Stat(p) // follows the per-key symlinks
		if errors.Is(err, fs.ErrNotExist) {
			continue // swapped away between ReadDir and Stat; the next event re-reads
		}
		if err != nil {
			return Snapshot{}, fmt.Errorf("stat %s: %w", p, err)
		}
		if info.IsDir() {
			continue
		}
		if info.Size() > maxFileSize {
			return Snapshot{}, fmt.Errorf("config file %s is %d bytes, more than %d", p, info.Size(), maxFileSize)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return Snapshot{}, fmt.Errorf("read %s: %w", p, err)
		}
		files[name] = string(b)
	}
	return Snapshot{Files: files, Loaded: time.Now()}, nil
}
