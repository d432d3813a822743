package devreload_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test builds a tiny program twice, as Tilt's loop would: version one
// runs, version two is "synced" to DEV_RELOAD_BINARY, SIGHUP makes the
// running process become version two, in place (same PID).
const program = `package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/kubelab/kubelab/services/platform/devreload"
)

var version = "one"

func main() {
	if err := devreload.Setup(slog.New(slog.DiscardHandler)); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Printf("running %s as pid %d\n", version, os.Getpid())
	time.Sleep(3 * time.Second)
}
`

func build(t *testing.T, dir, version string) string {
	t.Helper()
	out, err := filepath.Abs(filepath.Join(dir, "app-"+version))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", "-X main.version="+version, ".")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	return out
}

func TestSIGHUPExecsTheSyncedBinaryInPlace(t *testing.T) {
	dir, err := os.MkdirTemp(".", ".devreload-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(program), 0o600); err != nil {
		t.Fatal(err)
	}
	one, two := build(t, dir, "one"), build(t, dir, "two")
	synced := filepath.Join(t.TempDir(), "synced")

	var out bytes.Buffer
	cmd := exec.Command(one)
	cmd.Env = append(os.Environ(), "DEV_RELOAD_BINARY="+synced)
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	time.Sleep(500 * time.Millisecond)

	// Tilt syncs the new build, then signals.
	data, _ := os.ReadFile(two)
	if err := os.WriteFile(synced, data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	pid := cmd.Process.Pid
	want := []string{"running one as pid " + itoa(pid), "running two as pid " + itoa(pid)}
	if len(lines) != 2 || lines[0] != want[0] || lines[1] != want[1] {
		t.Fatalf("output %q, want %q", lines, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
