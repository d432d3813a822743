//go:build e2e

package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRollingUpdateAndRollbackLoseNothing rolls the frontend to 0.2.0 and
// back with `kubectl rollout undo` while loadgen sends constant traffic to
// its Service: not one request may fail, and only the two versions answer,
// the old one last.
func TestRollingUpdateAndRollbackLoseNothing(t *testing.T) {
	share(t, suiteNS)
	base := deployOverlay(t)

	lg := startLoad(t, base, 40, 150*time.Second)
	time.Sleep(5 * time.Second)

	cause := "e2e: set image 0.2.0 at " + time.Now().Format(time.TimeOnly)
	kubectl(t, "-n", nsOf(t), "set", "image", "deployment/frontend", "frontend=localhost/kubelab-frontend:0.2.0")
	kubectl(t, "-n", nsOf(t), "annotate", "deployment/frontend", "kubernetes.io/change-cause="+cause, "--overwrite")
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")
	// The cause belongs to the newest revision alone.
	history := strings.Split(strings.TrimSpace(kubectl(t, "-n", nsOf(t), "rollout", "history", "deployment/frontend")), "\n")
	if n := len(history); n < 4 || !strings.HasSuffix(history[n-1], cause) || strings.Contains(strings.Join(history[:n-1], "\n"), cause) {
		t.Errorf("rollout history should show %q on the newest revision only:\n%s", cause, strings.Join(history, "\n"))
	}
	time.Sleep(10 * time.Second)
	kubectl(t, "-n", nsOf(t), "rollout", "undo", "deployment/frontend")
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")

	s := lg.wait(t)
	noFailures(t, s, 4000, "the rollout and rollback")
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
