// Package kubetest is a fake API server for tests: over TLS, with a
// bearer token, it lists and watches objects held in memory the way the
// real one does, as far as kube's informers use it. A test changes the
// objects and the server's mood (refusals, compaction, a new token) and
// watches the informers follow.
package kubetest

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/clusterview/internal/kube"
)

// Request is one request the server was sent.
type Request struct {
	Verb      string // list or watch
	Path      string
	Query     map[string][]string
	UserAgent string
}

// Server is the fake API server.
type Server struct {
	srv       *httptest.Server
	caFile    string
	tokenFile string

	mu          sync.Mutex
	version     int // the last resourceVersion handed out
	oldest      int // a watch from before it is 410 Gone
	token       string
	collections map[string]*collection // by URL path
	refusals    map[string]kube.Status // by URL path
	requests    []Request
}

// collection is one resource in one namespace.
type collection struct {
	objects map[string]json.RawMessage // by name
	history []change
	watches map[*watch]struct{}
}

// change is one watch event, with the version it happened at.
type change struct {
	version int
	line    []byte
}

// watch is one open watch's queue of lines to send. Closing end ends
// it, cleanly or, with broken set first, by resetting the stream.
type watch struct {
	lines  chan []byte
	end    chan struct{}
	broken bool
}

// NewServer starts a server; it stops when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{token: "token-1", collections: map[string]*collection{}, refusals: map[string]kube.Status{}}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.close)
	dir := t.TempDir()
	s.caFile, s.tokenFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	if err := os.WriteFile(s.caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.tokenFile, []byte(s.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// Config is how a kube.Client reaches this server: as a pod's, with a CA
// file and a token file.
func (s *Server) Config() kube.Config {
	return kube.Config{Host: s.srv.URL, CAFile: s.caFile, TokenFile: s.tokenFile, UserAgent: "clusterview/test"}
}

// Client is a kube.Client of this server.
func (s *Server) Client(t testing.TB) *kube.Client {
	t.Helper()
	c, err := kube.NewClient(s.Config())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *Server) close() {
	s.EndWatches()
	s.srv.Close()
}

// Apply creates or replaces object, the JSON of one object as kubectl
// get -o json prints it, and tells every watch of its resource.
func (s *Server) Apply(t testing.TB, r kube.Resource, namespace, object string) {
	t.Helper()
	var o map[string]any
	if err := json.Unmarshal([]byte(object), &o); err != nil {
		t.Fatalf("apply: %v", err)
	}
	meta, _ := o["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if name == "" {
		t.Fatalf("apply: no metadata.name in %s", object)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.collection(r.Path(namespace))
	s.version++
	meta["resourceVersion"] = strconv.Itoa(s.version)
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	kind := "MODIFIED"
	if _, ok := c.objects[name]; !ok {
		kind = "ADDED"
	}
	c.objects[name] = b
	c.send(s.version, kind, b)
}

// Delete deletes the named object, if there is one.
func (s *Server) Delete(r kube.Resource, namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.collection(r.Path(namespace))
	b, ok := c.objects[name]
	if !ok {
		return
	}
	delete(c.objects, name)
	s.version++
	c.send(s.version, "DELETED", b)
}

// Refuse answers every list and watch of r with a Status of code, as
// the API server does when RBAC allows neither; Allow ends that.
func (s *Server) Refuse(r kube.Resource, namespace string, code int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusals[r.Path(namespace)] = kube.Status{Message: message, Reason: http.StatusText(code), Code: code}
}

// Allow ends a Refuse.
func (s *Server) Allow(r kube.Resource, namespace string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.refusals, r.Path(namespace))
}

// Bookmark sends every open watch a BOOKMARK at the current version.
func (s *Server) Bookmark() {
	s.mu.Lock()
	defer s.mu.Unlock()
	line := fmt.Appendf(nil, `{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"%d"}}}`, s.version)
	for _, c := range s.collections {
		for w := range c.watches {
			w.lines <- line
		}
	}
}

// Expire forgets all history, as etcd's compaction does: every open
// watch gets an ERROR 410 Gone and ends, and so does every watch from an
// older version, until the watcher lists again.
func (s *Server) Expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	s.oldest = s.version
	for _, c := range s.collections {
		c.history = nil
		for w := range c.watches {
			w.lines <- gone(s.version - 1)
			close(w.end)
			delete(c.watches, w)
		}
	}
}

// EndWatches ends every open watch without an error, as its
// timeoutSeconds does.
func (s *Server) EndWatches() { s.endWatches(false) }

// BreakWatches breaks every open watch's stream, as a connection that
// drops does: the client reads an error, not the end of the stream.
func (s *Server) BreakWatches() { s.endWatches(true) }

func (s *Server) endWatches(broken bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.collections {
		for w := range c.watches {
			w.broken = broken
			close(w.end)
			delete(c.watches, w)
		}
	}
}

// RotateToken writes a new token into the token file, as the kubelet
// does before the old one expires, and accepts only the new one.
func (s *Server) RotateToken(t testing.TB, token string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
	if err := os.WriteFile(s.tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Watching is how many watches of r are open.
func (s *Server) Watching(r kube.Resource, namespace string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.collection(r.Path(namespace)).watches)
}

// Requests are the requests served so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// collection returns path's collection, empty at first. s.mu is held.
func (s *Server) collection(path string) *collection {
	c, ok := s.collections[path]
	if !ok {
		c = &collection{objects: map[string]json.RawMessage{}, watches: map[*watch]struct{}{}}
		s.collections[path] = c
	}
	return c
}

// send records a change and gives it to every open watch.
func (c *collection) send(version int, kind string, object []byte) {
	line, _ := json.Marshal(struct {
		Type   string          `json:"type"`
		Object json.RawMessage `json:"object"`
	}{kind, object})
	c.history = append(c.history, change{version, line})
	for w := range c.watches {
		w.lines <- line
	}
}

func gone(version int) []byte {
	return fmt.Appendf(nil, `{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",`+
		`"message":"too old resource version: %d (%d)","reason":"Expired","code":410}}`, version, version+1)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	verb := "list"
	if query.Get("watch") == "true" || query.Get("watch") == "1" {
		verb = "watch"
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{Verb: verb, Path: r.URL.Path, Query: query, UserAgent: r.UserAgent()})
	token := s.token
	refusal, refused := s.refusals[r.URL.Path]
	s.mu.Unlock()

	switch {
	case r.Method != http.MethodGet:
		status(w, kube.Status{Message: "the fake API server only reads", Reason: "MethodNotAllowed", Code: http.StatusMethodNotAllowed})
	case r.Header.Get("Authorization") != "Bearer "+token:
		status(w, kube.Status{Message: "Unauthorized", Reason: "Unauthorized", Code: http.StatusUnauthorized})
	case !strings.Contains(r.URL.Path, "/namespaces/"):
		status(w, kube.Status{Message: "the fake API server serves only namespaced collections", Reason: "NotFound", Code: http.StatusNotFound})
	case refused:
		status(w, refusal)
	case verb == "list":
		s.list(w, r.URL.Path)
	default:
		s.watch(w, r, query)
	}
}

// status answers a failure the API server's way: a Status object.
func status(w http.ResponseWriter, st kube.Status) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(st.Code)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{}, "status": "Failure",
		"message": st.Message, "reason": st.Reason, "code": st.Code,
	})
}

func (s *Server) list(w http.ResponseWriter, path string) {
	s.mu.Lock()
	c := s.collection(path)
	items := make([]json.RawMessage, 0, len(c.objects))
	for _, name := range slices.Sorted(maps.Keys(c.objects)) {
		items = append(items, c.objects[name])
	}
	version := s.version
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"kind": "List", "apiVersion": "v1", "metadata": map[string]string{"resourceVersion": strconv.Itoa(version)}, "items": items,
	})
}

func (s *Server) watch(w http.ResponseWriter, r *http.Request, query map[string][]string) {
	from, err := strconv.Atoi(first(query["resourceVersion"]))
	if err != nil {
		status(w, kube.Status{Message: "the fake API server watches only from a resourceVersion", Reason: "BadRequest", Code: http.StatusBadRequest})
		return
	}
	timeout, err := strconv.Atoi(first(query["timeoutSeconds"]))
	if err != nil || timeout <= 0 {
		timeout = 1800
	}
	s.mu.Lock()
	c := s.collection(r.URL.Path)
	wt := &watch{lines: make(chan []byte, 1000), end: make(chan struct{})}
	if from < s.oldest {
		wt.lines <- gone(from)
		close(wt.end)
	} else {
		for _, ch := range c.history {
			if ch.version > from {
				wt.lines <- ch.line
			}
		}
		c.watches[wt] = struct{}{}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(c.watches, wt)
		s.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	write := func(line []byte) {
		_, _ = w.Write(append(line, '\n'))
		flusher.Flush()
	}
	deadline := time.NewTimer(time.Duration(timeout) * time.Second)
	defer deadline.Stop()
	for {
		select {
		case line := <-wt.lines:
			write(line)
		case <-wt.end:
			for {
				select {
				case line := <-wt.lines:
					write(line)
				default:
					if wt.broken {
						panic(http.ErrAbortHandler) // resets the stream
					}
					return
				}
			}
		case <-deadline.C:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}
