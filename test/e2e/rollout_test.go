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
// the old one last. The live view (/cluster), open all along, shows the
// new ReplicaSet growing while the old one shrinks, then the reverse.
func TestRollingUpdateAndRollbackLoseNothing(t *testing.T) {
	share(t, suiteNS)
	base := deployOverlay(t)
	view := watchLiveView(t, base)
	view.waitFor(t, 0, "the frontend at 0.1.0 with 2 of 2 ready", time.Minute, settledAt("0.1.0", 2))

	lg := startLoad(t, base, 40, 150*time.Second)
	time.Sleep(5 * time.Second)

	cause := "e2e: set image 0.2.0 at " + time.Now().Format(time.TimeOnly)
	mark := view.mark()
	kubectl(t, "-n", nsOf(t), "set", "image", "deployment/frontend", "frontend=localhost/kubelab-frontend:0.2.0")
	kubectl(t, "-n", nsOf(t), "annotate", "deployment/frontend", "kubernetes.io/change-cause="+cause, "--overwrite")
	view.waitFor(t, mark, "0.1.0's and 0.2.0's ReplicaSets side by side", time.Minute, bothVersions)
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")
	view.waitFor(t, mark, "0.2.0's ReplicaSet with 2 of 2 ready and 0.1.0's at 0", time.Minute, settledAt("0.2.0", 2))
	// The cause belongs to the newest revision alone.
	history := strings.Split(strings.TrimSpace(kubectl(t, "-n", nsOf(t), "rollout", "history", "deployment/frontend")), "\n")
	if n := len(history); n < 4 || !strings.HasSuffix(history[n-1], cause) || strings.Contains(strings.Join(history[:n-1], "\n"), cause) {
		t.Errorf("rollout history should show %q on the newest revision only:\n%s", cause, strings.Join(history, "\n"))
	}
	time.Sleep(10 * time.Second)
	mark = view.mark()
	kubectl(t, "-n", nsOf(t), "rollout", "undo", "deployment/frontend")
	view.waitFor(t, mark, "both ReplicaSets side by side again, for the undo", time.Minute, bothVersions)
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")
	// The undo moves 0.1.0's ReplicaSet to the newest revision.
	view.waitFor(t, mark, "0.1.0's ReplicaSet newest again, 2 of 2 ready", time.Minute, settledAt("0.1.0", 2))
	snapshots, streams := view.all()
	for _, s := range snapshots {
		var desired int32
		for _, rs := range s.replicaSets("frontend") {
			desired += rs.Desired
		}
		// maxSurge 1 over 2 replicas: never more than 3 pods wanted.
		if desired > 3 || len(s.Problems) > 0 {
			t.Errorf("a live view snapshot wants %d frontend pods (at most 3) or has problems %v: %v", desired, s.Problems, s.replicaSets("frontend"))
		}
	}
	t.Logf("live view: %d snapshots over %d streams (each rollout ends the streams of the pods it replaces)", len(snapshots), streams)

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
