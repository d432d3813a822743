package kube

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// tokenReread is how old a token read from its file may be before it is
// read again. A bound ServiceAccount token lives an hour (or less) and
// the kubelet writes the new one well before the old one expires;
// client-go re-reads it every minute too.
const tokenReread = time.Minute

// tokenFile is the bearer token in a file that the kubelet rewrites.
type tokenFile struct {
	path string
	now  func() time.Time

	mu     sync.Mutex
	token  string
	readAt time.Time
}

func newTokenFile(path string) *tokenFile {
	return &tokenFile{path: path, now: time.Now}
}

// get returns the token, reading the file again when the last read is
// older than tokenReread.
func (t *tokenFile) get() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && t.now().Sub(t.readAt) < tokenReread {
		return t.token, nil
	}
	b, err := os.ReadFile(t.path)
	token := strings.TrimSpace(string(b))
	switch {
	case err == nil && token != "":
		t.token, t.readAt = token, t.now()
	case t.token != "":
		// Keep the last token: it is still valid for a while, and the
		// API server, not this file, is the judge of that.
	case err != nil:
		return "", fmt.Errorf("read the ServiceAccount token: %w", err)
	default:
		return "", fmt.Errorf("read the ServiceAccount token: %s is empty", t.path)
	}
	return t.token, nil
}

// stale makes the next get read the file: the API server refused the
// token (401), so a newer one may be there already.
func (t *tokenFile) stale() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.readAt = time.Time{}
}
