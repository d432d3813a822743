package config_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/platform/config"
	"github.com/kubelab/kubelab/services/platform/config/configtest"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestDirFollowsKubeletSwap(t *testing.T) {
	dir := t.TempDir()
	if err := configtest.WriteAtomic(dir, map[string]string{"title": "Photo lab\n", "colour": "blue"}); err != nil {
		t.Fatal(err)
	}
	d, err := config.OpenDir(dir, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Snapshot().Get("title", ""); got != "Photo lab" {
		t.Fatalf("title = %q, want trimmed %q", got, "Photo lab")
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	changed := make(chan config.Snapshot, 4)
	d.OnChange(func(s config.Snapshot) { changed <- s })
	go func() { _ = d.Watch(ctx) }()
	time.Sleep(50 * time.Millisecond) // let the watch start; a lost event is still caught by resync

	if err := configtest.WriteAtomic(dir, map[string]string{"title": "Renamed", "banner": "hello"}); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-changed:
		if s.Get("title", "") != "Renamed" || s.Get("banner", "") != "hello" {
			t.Fatalf("snapshot after swap = %v", s.Files)
		}
		if _, ok := s.Files["colour"]; ok {
			t.Fatalf("removed key still present: %v", s.Files)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no change published within 2s of the ..data swap")
	}
	if got := d.Snapshot().Get("title", ""); got != "Renamed" {
		t.Fatalf("Snapshot() after swap title = %q", got)
	}
}

func TestDirPlainFiles(t *testing.T) {
	// Outside Kubernetes (make run) the directory is just files.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := config.OpenDir(dir, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	s := d.Snapshot()
	if s.Get("token", "") != "s3cret" {
		t.Fatalf("token = %q", s.Get("token", ""))
	}
	if fp := s.Fingerprint(); len(fp) != 12 || fp == "none" {
		t.Fatalf("fingerprint = %q", fp)
	}
}

func TestOpenDirMissing(t *testing.T) {
	if _, err := config.OpenDir(filepath.Join(t.TempDir(), "nope"), quietLogger()); err == nil {
		t.Fatal("want error for a missing directory")
	}
}

func TestFingerprint(t *testing.T) {
	a := config.Snapshot{Files: map[string]string{"k": "v1"}}
	b := config.Snapshot{Files: map[string]string{"k": "v2"}}
	c := config.Snapshot{Files: map[string]string{"kv": "1"}}
	d := config.Snapshot{Files: map[string]string{"k": "v1"}}
	if a.Fingerprint() == b.Fingerprint() || a.Fingerprint() == c.Fingerprint() {
		t.Fatal("different content, same fingerprint")
	}
	if a.Fingerprint() != d.Fingerprint() {
		t.Fatal("same content, different fingerprint")
	}
	if (config.Snapshot{}).Fingerprint() != "none" {
		t.Fatal("empty snapshot fingerprint should be none")
	}
}
