//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// loadgen builds the loadgen command once.
func loadgenBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "loadgen")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/kubelab/kubelab/services/loadgen").CombinedOutput(); err != nil {
		t.Fatalf("build loadgen: %v\n%s", err, out)
	}
	return bin
}

type loadSummary struct {
	Sent, OK, Failed int
	Versions         map[string]int
	Failures         map[string]int
	Intervals        []struct {
		Versions map[string]int `json:"versions"`
	}
}

// TestRollingUpdateAndRollbackLoseNothing rolls the frontend to 0.2.0 and
// back with `kubectl rollout undo` while loadgen sends constant traffic to
// its Service: not one request may fail, and only the two versions answer,
// the old one last.
func TestRollingUpdateAndRollbackLoseNothing(t *testing.T) {
	kubectl(t, "apply", "-k", "overlay")
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")
	base := frontendURL(t)
	eventually(t, "the frontend answering", time.Minute, func() error {
		_, err := httpGet(base + "/api/v1/info")
		return err
	})

	out := filepath.Join(t.TempDir(), "summary.json")
	lg := exec.Command(loadgenBinary(t), "--target", base, "--rate", "40", "--duration", "150s",
		"--keepalive=false", "--timeout", "5s", "--json", out, "--max-errors", "-1", "--quiet")
	lg.Stderr = os.Stderr
	if err := lg.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lg.Process.Kill() }()
	time.Sleep(5 * time.Second)

	kubectl(t, "-n", ns, "annotate", "deployment/frontend", "kubernetes.io/change-cause=e2e: set image 0.2.0", "--overwrite")
	kubectl(t, "-n", ns, "set", "image", "deployment/frontend", "frontend=localhost/kubelab-frontend:0.2.0")
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")
	time.Sleep(10 * time.Second)
	kubectl(t, "-n", ns, "rollout", "undo", "deployment/frontend")
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")
	history := kubectl(t, "-n", ns, "rollout", "history", "deployment/frontend")
	if !strings.Contains(history, "e2e: set image 0.2.0") {
		t.Errorf("rollout history lacks the change-cause:\n%s", history)
	}

	if err := lg.Wait(); err != nil {
		t.Fatalf("loadgen: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var s loadSummary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	t.Logf("loadgen: %d sent, %d failed, versions %v", s.Sent, s.Failed, s.Versions)
	if s.Failed != 0 || s.Sent < 4000 {
		t.Fatalf("%d of %d requests failed during the rollout and rollback: %v", s.Failed, s.Sent, s.Failures)
	}
	var versions []string
	for v := range s.Versions {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	if !slices.Equal(versions, []string{"0.1.0", "0.2.0"}) {
		t.Fatalf("versions seen %v, want 0.1.0 and 0.2.0", versions)
	}
	last := s.Intervals[len(s.Intervals)-1].Versions
	if len(last) != 1 || last["0.1.0"] == 0 {
		t.Fatalf("the last second was answered by %v, want 0.1.0 only after the undo", last)
	}
}
