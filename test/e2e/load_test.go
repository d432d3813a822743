//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	loadgenOnce sync.Once
	loadgenPath string
	loadgenErr  error
)

// loadgenBinary builds the loadgen command once for the whole run.
func loadgenBinary(t *testing.T) string {
	t.Helper()
	loadgenOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kubelab-e2e-")
		if err != nil {
			loadgenErr = err
			return
		}
		loadgenPath = filepath.Join(dir, "loadgen")
		if out, err := exec.Command("go", "build", "-o", loadgenPath, "github.com/kubelab/kubelab/services/loadgen").CombinedOutput(); err != nil {
			loadgenErr = fmt.Errorf("build loadgen: %w\n%s", err, out)
		}
	})
	if loadgenErr != nil {
		t.Fatal(loadgenErr)
	}
	return loadgenPath
}

type interval struct {
	At       float64        `json:"at_s"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Versions map[string]int `json:"versions"`
	Pods     map[string]int `json:"pods"`
	Backends map[string]int `json:"backends"`
}

type loadSummary struct {
	Sent, OK, Failed int
	Versions, Pods   map[string]int
	Backends         map[string]int
	Failures         map[string]int
	Intervals        []interval
}

// load is a loadgen run in the background: constant traffic at a fixed
// rate for a fixed time, so every run ends by itself.
type load struct {
	cmd     *exec.Cmd
	out     string
	started time.Time // the summary's at_s counts from here
}

// startLoad runs loadgen against target for d at rate requests a second,
// with extra flags (--path, --host, ...). Each request opens a new
// connection, so kube-proxy chooses a pod for every one of them.
func startLoad(t *testing.T, target string, rate int, d time.Duration, extra ...string) *load {
	t.Helper()
	out := filepath.Join(t.TempDir(), "summary.json")
	args := append([]string{"--target", target, "--rate", fmt.Sprint(rate), "--duration", d.String(),
		"--keepalive=false", "--timeout", "5s", "--json", out, "--max-errors", "-1", "--quiet"}, extra...)
	cmd := exec.Command(loadgenBinary(t), args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return &load{cmd: cmd, out: out, started: time.Now()}
}

// stop ends the run early (loadgen writes its summary on SIGTERM) and
// returns the summary.
func (l *load) stop(t *testing.T) loadSummary {
	t.Helper()
	_ = l.cmd.Process.Signal(syscall.SIGTERM)
	return l.wait(t)
}

// wait waits for the run to end and returns its summary.
func (l *load) wait(t *testing.T) loadSummary {
	t.Helper()
	if err := l.cmd.Wait(); err != nil {
		t.Fatalf("loadgen: %v", err)
	}
	b, err := os.ReadFile(l.out)
	if err != nil {
		t.Fatal(err)
	}
	var s loadSummary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	t.Logf("loadgen: %d sent, %d failed, versions %v, imageproc pods %v", s.Sent, s.Failed, s.Versions, s.Backends)
	return s
}

// noFailures fails the test if any request of s failed or too few were sent.
func noFailures(t *testing.T, s loadSummary, atLeast int, during string) {
	t.Helper()
	if s.Failed != 0 || s.Sent < atLeast {
		t.Fatalf("%s: %d of %d requests failed (want 0 of at least %d): %v", during, s.Failed, s.Sent, atLeast, s.Failures)
	}
}
