package main_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

// TestProcessSlowUploadsAreCut: a client sending its photo at a few bytes a
// second held, for as long as it liked, a connection of the frontend and
// an upload stream with a temporary file in imageproc. Below
// UPLOAD_MIN_RATE it gets a 408 and its connection is closed, and
// imageproc drops the temporary file.
func TestProcessSlowUploadsAreCut(t *testing.T) {
	s := startStack(t, 1, "UPLOAD_MIN_RATE=1024", "UPLOAD_RATE_WINDOW=2s")
	addr := strings.TrimPrefix(s.url, "http://")
	tmp := filepath.Join(s.data[0], "blobs", "tmp")
	pid := s.imageproc[0].Cmd.Process.Pid
	files, fds := filesUnder(t, tmp), fdsUnder(t, pid, tmp)

	const clients = 5
	var answers []<-chan answer
	for range clients {
		answers = append(answers, slowUpload(t, addr))
	}
	proctest.WaitFor(t, "imageproc to hold a temporary file for each upload", 10*time.Second, func() bool {
		return filesUnder(t, tmp) == files+clients && fdsUnder(t, pid, tmp) == fds+clients
	})

	for _, ch := range answers {
		var a answer
		select {
		case a = <-ch:
		case <-time.After(30 * time.Second):
			t.Fatal("an upload arriving at 10 bytes a second is still waited for after 30s")
		}
		var p struct{ Status int }
		if a.err != nil || a.code != http.StatusRequestTimeout || a.contentType != "application/problem+json" ||
			json.Unmarshal([]byte(a.body), &p) != nil || p.Status != http.StatusRequestTimeout || !strings.Contains(a.body, "slower than 1 KiB/s") {
			t.Fatalf("slow upload answered %d %s %s (%v)", a.code, a.contentType, a.body, a.err)
		}
		if !a.closed {
			t.Fatal("the connection of the slow upload stayed open")
		}
	}
	proctest.WaitFor(t, "imageproc to close and remove the temporary files", 10*time.Second, func() bool {
		return filesUnder(t, tmp) == files && fdsUnder(t, pid, tmp) == fds
	})

	// A photo sent at a normal pace is still taken.
	resp, err := http.Post(s.url+"/api/v1/images?filename=fast.jpg", "image/jpeg", strings.NewReader(string(pipelinetest.JPEG(64, 48, 1))))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload at a normal pace: %d", resp.StatusCode)
	}
}

// answer is what a slow client got back.
type answer struct {
	code              int
	contentType, body string
	closed            bool // the server closed the connection after answering
	err               error
}

// slowUpload sends the headers of a 100 kB photo and then its bytes at ten
// a second, and stops sending when the answer comes, as RFC 9112 (9.5)
// asks of a client.
func slowUpload(t *testing.T, addr string) <-chan answer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	fmt.Fprintf(conn, "POST /api/v1/images?filename=slow.png HTTP/1.1\r\nHost: %s\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n", addr)
	answered := make(chan struct{})
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-answered:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte{0}); err != nil {
					return
				}
			}
		}
	}()
	out := make(chan answer, 1)
	go func() {
		defer close(answered)
		var a answer
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			a.err = err
			out <- a
			return
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		a.code, a.contentType, a.body, a.err = resp.StatusCode, resp.Header.Get("Content-Type"), string(body), err
		_, err = br.ReadByte()
		a.closed = errors.Is(err, io.EOF)
		out <- a
	}()
	return out
}

// filesUnder counts the files in the tree under dir.
func filesUnder(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while we looked
		}
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// fdsUnder counts the file descriptors of process pid open on files
// under dir (Linux).
func fdsUnder(t *testing.T, pid int, dir string) int {
	t.Helper()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n
}
