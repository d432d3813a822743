// Package configtest updates a directory the way kubelet updates a mounted
// ConfigMap or Secret, so tests can exercise the real reload path.
package configtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WriteAtomic replaces the content of dir with files, as kubelet does: the
// new generation goes into a fresh hidden directory, "..data_tmp" is pointed
// at it and renamed over "..data" (one atomic step), each key is a symlink
// through "..data", and the previous generation is removed.
func WriteAtomic(dir string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	gen := ".." + time.Now().UTC().Format("2006_01_02_15_04_05.000000000")
	if err := os.Mkdir(filepath.Join(dir, gen), 0o755); err != nil {
		return fmt.Errorf("create generation: %w", err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, gen, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(gen, tmp); err != nil {
		return fmt.Errorf("link ..data_tmp: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return fmt.Errorf("swap ..data: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if _, keep := files[name]; !keep {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("remove key %s: %w", name, err)
			}
		}
	}
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return fmt.Errorf("link key %s: %w", name, err)
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			return fmt.Errorf("remove old generation: %w", err)
		}
	}
	return nil
}
