package kube

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestTokenIsReadAgain: the kubelet rewrites a bound ServiceAccount
// token before it expires, so the token is read again once the last
// read is a minute old, or at once after the API server refused it; and
// a file gone for a moment does not lose the token still held.
func TestTokenIsReadAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	write := func(token string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tf := newTokenFile(path)
	tf.now = func() time.Time { return now }

	write("first")
	for _, step := range []struct {
		what    string
		advance time.Duration
		write   string // the file's new token, if any
		remove  bool
		stale   bool
		want    string
	}{
		{what: "read at first", want: "first"},
		{what: "rotated, read less than a minute ago", advance: 30 * time.Second, write: "second", want: "first"},
		{what: "a minute after the last read", advance: 30 * time.Second, want: "second"},
		{what: "rotated, and the API server refused the old one", write: "third", stale: true, want: "third"},
		{what: "the file gone a minute later", advance: time.Minute, remove: true, want: "third"},
	} {
		now = now.Add(step.advance)
		if step.write != "" {
			write(step.write)
		}
		if step.remove {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}
		if step.stale {
			tf.stale()
		}
		got, err := tf.get()
		if err != nil || got != step.want {
			t.Errorf("%s: token %q, %v; want %q", step.what, got, err, step.want)
		}
	}
}

func TestTokenMissingAtFirstIsAnError(t *testing.T) {
	tf := newTokenFile(filepath.Join(t.TempDir(), "token"))
	if _, err := tf.get(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no token file: %v, want ErrNotExist", err)
	}
}

// TestInClusterConfigOutsideAPod: with no API server's address in the
// environment there is nothing to watch, and the error says why.
func TestInClusterConfigOutsideAPod(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	if _, err := InCluster("clusterview/test"); !errors.Is(err, ErrNotInCluster) {
		t.Fatalf("InCluster outside a pod: %v, want ErrNotInCluster", err)
	}
}
