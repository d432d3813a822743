package view

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// The watcher is tested here against client-go's fake clientset, which
// serves the informers' list and watch from memory; the e2e suite runs
// the same code against the real API server (TestLiveViewDuringRollout).

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

func TestWatcherFollowsChangesWithinASecond(t *testing.T) {
	client := fake.NewClientset(pod("web-1", "StatefulSet", "web", t0, true, 0))
	hub := NewHub(10)
	w := NewWatcher(slog.New(slog.NewTextHandler(io.Discard, nil)), client, "kubelab", hub)
	go func() { _ = w.Run(t.Context()) }()

	sub, err := hub.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	next(t, sub, "the pod listed at start", func(s Snapshot) bool { return len(s.OtherPods) == 1 && s.OtherPods[0].Ready })

	p := pod("web-1", "StatefulSet", "web", t0, false, 1)
	if _, err := client.CoreV1().Pods("kubelab").Update(t.Context(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	next(t, sub, "the pod not ready after its update", func(s Snapshot) bool {
		return len(s.OtherPods) == 1 && !s.OtherPods[0].Ready && s.OtherPods[0].Restarts == 1
	})
	if err := client.CoreV1().Pods("kubelab").Delete(t.Context(), "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	next(t, sub, "no pod after the delete", func(s Snapshot) bool { return len(s.OtherPods) == 0 })

	// Other namespaces are not watched at all.
	other := pod("elsewhere", "StatefulSet", "x", t0, true, 0)
	other.Namespace = "default"
	if _, err := client.CoreV1().Pods("default").Create(t.Context(), other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Ready:
		if b := sub.Next(); strings.Contains(string(b), "elsewhere") {
			t.Fatalf("a pod of another namespace in the snapshot: %s", b)
		}
	case <-time.After(2 * settle):
	}
}

func TestWatcherSaysWhatItMayNotWatch(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("list", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "",
			errors.New("RBAC: the Role has no rule for jobs"))
	})
	hub := NewHub(10)
	w := NewWatcher(slog.New(slog.NewTextHandler(io.Discard, nil)), client, "kubelab", hub)
	go func() { _ = w.Run(t.Context()) }()
	sub, _ := hub.Subscribe()
	s := next(t, sub, "the jobs problem", func(s Snapshot) bool { return len(s.Problems) > 0 })
	if len(s.Problems) != 1 || !strings.HasPrefix(s.Problems[0], "jobs: ") || !strings.Contains(s.Problems[0], "forbidden") {
		t.Fatalf("problems %q, want one naming jobs as forbidden", s.Problems)
	}
}
