package view

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/clusterview/internal/kube"
	"github.com/kubelab/kubelab/services/clusterview/internal/kube/kubetest"
)

// The watcher is tested here against kubetest's fake API server, which
// lists and watches over TLS as the real one does; the e2e suite runs the
// same code against the real API server (TestLiveViewDuringRollout).

// next waits up to a second for a snapshot that satisfies ok.
func next(t *testing.T, sub *Subscription, what string, ok func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.After(time.Second + settle)
	for {
		select {
		case <-deadline:
			t.Fatalf("no snapshot with %s within a second", what)
		case <-sub.Ready:
			var s Snapshot
			if err := json.Unmarshal(sub.Next(), &s); err != nil {
				t.Fatal(err)
			}
			if ok(s) {
				return s
			}
		}
	}
}

// statefulPod is a StatefulSet's pod as kubectl get pod -o json prints
// it (trimmed to what shows the shape).
func statefulPod(namespace, name string, ready bool, restarts int) string {
	return fmt.Sprintf(`{
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "creationTimestamp": "2026-12-01T10:00:00Z",
        "generateName": "web-",
        "labels": {"app.kubernetes.io/name": "web", "apps.kubernetes.io/pod-index": "1"},
        "name": %q,
        "namespace": %q,
        "ownerReferences": [
            {"apiVersion": "apps/v1", "blockOwnerDeletion": true, "controller": true, "kind": "StatefulSet", "name": "web", "uid": "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d"}
        ],
        "uid": "7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e"
    },
    "spec": {"containers": [{"image": "postgres:17", "name": "web"}], "nodeName": "minikube"},
    "status": {
        "conditions": [
            {"lastProbeTime": null, "lastTransitionTime": "2026-12-01T10:00:09Z", "status": %q, "type": "Ready"}
        ],
        "containerStatuses": [
            {"image": "docker.io/library/postgres:17", "name": "web", "ready": %t, "restartCount": %d, "started": true, "state": {"running": {"startedAt": "2026-12-01T10:00:03Z"}}}
        ],
        "phase": "Running",
        "podIP": "10.244.0.12"
    }
}`, name, namespace, conditionStatus(ready), ready, restarts)
}

// conditionStatus is a condition's status as the API writes it.
func conditionStatus(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// watch runs a watcher of kubelab against api, with short backoffs,
// until the test ends.
func watch(t *testing.T, ctx context.Context, api *kubetest.Server) (*Subscription, chan error) {
	t.Helper()
	hub := NewHub(10)
	w := NewWatcher(slog.New(slog.NewTextHandler(io.Discard, nil)), api.Client(t), "kubelab", hub)
	fast := kube.Backoff{First: 10 * time.Millisecond, Limit: 50 * time.Millisecond}
	w.deployments.Backoff, w.replicaSets.Backoff, w.pods.Backoff, w.events.Backoff = fast, fast, fast, fast
	w.slices.Backoff, w.hpas.Backoff, w.jobs.Backoff = fast, fast, fast
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	// Run has returned before the server stops.
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	sub, err := hub.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	return sub, done
}

func TestWatcherFollowsChangesWithinASecond(t *testing.T) {
	api := kubetest.NewServer(t)
	api.Apply(t, kube.Pods, "kubelab", statefulPod("kubelab", "web-1", true, 0))
	sub, _ := watch(t, t.Context(), api)
	next(t, sub, "the pod listed at start", func(s Snapshot) bool { return len(s.OtherPods) == 1 && s.OtherPods[0].Ready })

	api.Apply(t, kube.Pods, "kubelab", statefulPod("kubelab", "web-1", false, 1))
	next(t, sub, "the pod not ready after its update", func(s Snapshot) bool {
		return len(s.OtherPods) == 1 && !s.OtherPods[0].Ready && s.OtherPods[0].Restarts == 1
	})
	api.Delete(kube.Pods, "kubelab", "web-1")
	next(t, sub, "no pod after the delete", func(s Snapshot) bool { return len(s.OtherPods) == 0 })

	// Other namespaces are not watched at all.
	api.Apply(t, kube.Pods, "default", statefulPod("default", "elsewhere", true, 0))
	select {
	case <-sub.Ready:
		if b := sub.Next(); strings.Contains(string(b), "elsewhere") {
			t.Fatalf("a pod of another namespace in the snapshot: %s", b)
		}
	case <-time.After(2 * settle):
	}
}

// TestWatcherSaysWhatItMayNotWatch: a resource the Role does not grant
// is named on the page with the API server's reason, and the rest is
// watched as usual; once the Role grants it, the problem goes.
func TestWatcherSaysWhatItMayNotWatch(t *testing.T) {
	const forbidden = `jobs.batch is forbidden: User "system:serviceaccount:kubelab:frontend" cannot list resource "jobs" in API group "batch" in the namespace "kubelab"`
	api := kubetest.NewServer(t)
	api.Refuse(kube.Jobs, "kubelab", http.StatusForbidden, forbidden)
	api.Apply(t, kube.Pods, "kubelab", statefulPod("kubelab", "web-1", true, 0))
	sub, _ := watch(t, t.Context(), api)

	s := next(t, sub, "the jobs problem", func(s Snapshot) bool { return len(s.Problems) > 0 && len(s.OtherPods) == 1 })
	if len(s.Problems) != 1 || s.Problems[0] != "jobs: "+forbidden {
		t.Fatalf("problems %q, want one naming jobs, in the API server's words", s.Problems)
	}
	api.Allow(kube.Jobs, "kubelab")
	next(t, sub, "no problem once jobs list", func(s Snapshot) bool { return len(s.Problems) == 0 })
}

// TestWatcherStopsWithItsContext: when clusterview stops, Run returns
// and no watch is left open on the API server.
func TestWatcherStopsWithItsContext(t *testing.T) {
	api := kubetest.NewServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	sub, done := watch(t, ctx, api)
	next(t, sub, "a first snapshot", func(Snapshot) bool { return true })
	cancel()
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run still running a second after its context ended")
	}
	// The server hears of each cancelled watch a moment later.
	deadline := time.Now().Add(time.Second)
	for _, r := range []kube.Resource{kube.Deployments, kube.ReplicaSets, kube.Pods, kube.Events, kube.EndpointSlices, kube.HorizontalPodAutoscalers, kube.Jobs} {
		for api.Watching(r, "kubelab") != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("a watch of %s still open a second after Run returned", r.Name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
