// Package proctest runs kubelab's real binaries in tests the way Kubernetes
// runs them in pods: built once, configured by environment, probed over
// HTTP, stopped with signals, their logs shown when a test fails.
package proctest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// builds caches one binary per package and build flags for the whole test
// process.
var builds sync.Map // package path and flags -> *build

type build struct {
	once sync.Once
	path string
	err  error
}

// Build compiles the main package pkg (an import path, or a directory like
// ".") once per test process and returns the binary's path. flags go to go
// build before the package, e.g. "-tags", "nosqlite" for the cluster
// images' build.
func Build(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(strings.Join(append([]string{pkg}, flags...), " "), &build{})
	b := v.(*build)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "kubelab-bin-")
		if err != nil {
			b.err = err
			return
		}
		name := filepath.Base(pkg)
		if name == "." {
			wd, _ := os.Getwd()
			name = filepath.Base(wd)
		}
		b.path = filepath.Join(dir, name)
		args := append(append([]string{"build", "-o", b.path}, flags...), pkg)
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// FreeAddr returns a loopback address with a port nobody listens on, and
// that no earlier call in this test binary returned. The port is free only
// until someone binds it: the kernel may offer a port again as soon as its
// listener closes, and once gave a frontend's metrics the port it had just
// given imageproc's admin server, before imageproc bound it. So the ports
// handed out are remembered, for the life of the test binary: a set of the
// process's, as the ports are.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		if _, taken := handedOut.LoadOrStore(addr, true); !taken {
			return addr
		}
	}
	t.Fatal("no loopback port that was not handed out already, in 100 tries")
	return ""
}

var handedOut sync.Map

// Buffer is a bytes.Buffer safe to read while a process writes to it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Proc is a running binary.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	// Log holds the process's stdout and stderr.
	Log    *Buffer
	exited chan struct{}
	err    error
}

// Start runs bin with args and the test's environment plus env (later
// entries win). It never exports traces. The process is killed when the
// test ends, and its log is printed if the test failed.
func Start(t testing.TB, name, bin string, args []string, env ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, Log: &Buffer{}, exited: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Env = append(append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT="), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Log, p.Log
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.Log.String())
		}
	})
	return p
}

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s: %v", p.Name, err)
	}
}

// Exited is closed when the process has ended.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Wait waits up to timeout for the process to end and returns its exit
// code (-1 if a signal killed it).
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("%s still running after %v", p.Name, timeout)
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return exit.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("%s: %v", p.Name, p.err)
	}
	return 0
}

// WaitFor polls cond every 20ms until it holds, failing the test after
// timeout.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Status GETs url and returns the status code, or 0 if there was no answer.
func Status(url string) int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
