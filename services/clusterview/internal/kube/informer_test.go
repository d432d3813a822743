package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/clusterview/internal/kube"
	"github.com/kubelab/kubelab/services/clusterview/internal/kube/kubetest"
)

// The informer is tested against kubetest's fake API server, which
// speaks the list and watch protocol over TLS; the e2e suite runs the
// same code against the real one (test/e2e/liveview_test.go).

const ns = "kubelab"

// fixture is testdata/file with its metadata.name replaced, so one file
// makes many objects. It is indented as kubectl prints it.
func fixture(t *testing.T, file, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var o map[string]any
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	o["metadata"].(map[string]any)["name"] = name
	if b, err = json.MarshalIndent(o, "", "    "); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eventually waits up to five seconds for ok.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// start runs an informer of pods until the test ends, with short
// backoffs, and returns it and a channel closed when Run has returned.
func start(t *testing.T, api *kubetest.Server, ctx context.Context) (*kube.Informer[kube.Pod], chan struct{}) {
	in := kube.NewInformer[kube.Pod](api.Client(t), kube.Pods, ns, func() {})
	in.Backoff = kube.Backoff{First: 10 * time.Millisecond, Limit: 50 * time.Millisecond}
	done := make(chan struct{})
	go func() { defer close(done); in.Run(ctx) }()
	t.Cleanup(func() { <-done })
	return in, done
}

func names(pods []kube.Pod) string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name+"@"+p.Status.Phase)
	}
	return strings.Join(out, " ")
}

func verbs(api *kubetest.Server) string {
	var out []string
	for _, r := range api.Requests() {
		out = append(out, r.Verb)
	}
	return strings.Join(out, " ")
}

// TestInformerListsThenWatches follows the protocol step by step: one
// list, then a watch from the list's version that hears every change; a
// watch that times out is followed by another from where it ended (no
// list); a bookmark moves that point on; and only 410 Gone lists again.
func TestInformerListsThenWatches(t *testing.T) {
	api := kubetest.NewServer(t)
	api.Apply(t, kube.Pods, ns, fixture(t, "pod.json", "web-a"))
	api.Apply(t, kube.Pods, "elsewhere", fixture(t, "pod.json", "not-ours"))
	in, _ := start(t, api, t.Context())

	eventually(t, "the pod listed, then a watch open", func() bool { return names(in.List()) == "web-a@Running" && api.Watching(kube.Pods, ns) == 1 })
	reqs := api.Requests()
	list, watch := reqs[0], reqs[1]
	if list.Verb != "list" || list.Path != "/api/v1/namespaces/kubelab/pods" || list.UserAgent != "clusterview/test" {
		t.Errorf("first request %+v, want a list of kubelab's pods by clusterview/test", list)
	}
	timeout, _ := strconv.Atoi(watch.Query["timeoutSeconds"][0])
	if watch.Verb != "watch" || watch.Query["resourceVersion"][0] != "2" || watch.Query["allowWatchBookmarks"][0] != "true" || timeout < 300 || timeout > 600 {
		t.Errorf("second request %+v, want a watch from the list's version 2 with bookmarks, for 5 to 10 minutes", watch)
	}

	api.Apply(t, kube.Pods, ns, fixture(t, "pod.json", "web-b"))
	api.Apply(t, kube.Pods, ns, strings.Replace(fixture(t, "pod.json", "web-a"), `"phase": "Running"`, `"phase": "Failed"`, 1))
	eventually(t, "an ADDED and a MODIFIED pod", func() bool { return names(in.List()) == "web-a@Failed web-b@Running" })
	api.Delete(kube.Pods, ns, "web-b")
	eventually(t, "the DELETED pod gone", func() bool { return names(in.List()) == "web-a@Failed" })

	// Version 6 happens in another namespace; a bookmark says the
	// watcher has seen up to it.
	api.Apply(t, kube.Pods, "elsewhere", fixture(t, "pod.json", "not-ours-2"))
	api.Bookmark()
	api.EndWatches()
	eventually(t, "a new watch after the old one timed out", func() bool { return api.Watching(kube.Pods, ns) == 1 })
	reqs = api.Requests()
	if got := reqs[len(reqs)-1]; got.Verb != "watch" || got.Query["resourceVersion"][0] != "6" {
		t.Errorf("after a bookmark at 6 and a timeout: %s from %s, want a watch from 6", got.Verb, got.Query["resourceVersion"])
	}

	api.Expire()
	api.Apply(t, kube.Pods, ns, fixture(t, "pod.json", "web-c"))
	eventually(t, "a new list after 410 Gone", func() bool { return names(in.List()) == "web-a@Failed web-c@Running" })
	eventually(t, "a watch again", func() bool { return api.Watching(kube.Pods, ns) == 1 })
	if got, want := verbs(api), "list watch watch list watch"; got != want {
		t.Errorf("requests %q, want %q", got, want)
	}
	if err := in.Problem(); err != nil {
		t.Errorf("problem %v; a timeout, a bookmark and 410 Gone are all normal", err)
	}
}

// TestInformerRewatchesABrokenStream: a watch whose connection breaks
// is followed by a new watch from the last version seen, with no list
// and no problem to show: nothing was missed.
func TestInformerRewatchesABrokenStream(t *testing.T) {
	api := kubetest.NewServer(t)
	in, _ := start(t, api, t.Context())
	eventually(t, "a watch open", func() bool { return api.Watching(kube.Pods, ns) == 1 })
	api.Apply(t, kube.Pods, ns, fixture(t, "pod.json", "web-a"))
	eventually(t, "the pod watched", func() bool { return names(in.List()) == "web-a@Running" })

	api.BreakWatches()
	api.Apply(t, kube.Pods, ns, fixture(t, "pod.json", "web-b"))
	eventually(t, "the pod added while no watch was open", func() bool { return names(in.List()) == "web-a@Running web-b@Running" })
	reqs := api.Requests()
	if got, want := verbs(api), "list watch watch"; got != want || reqs[2].Query["resourceVersion"][0] != "1" {
		t.Errorf("requests %q, the last from %s; want %q, the last from version 1", got, reqs[len(reqs)-1].Query["resourceVersion"], want)
	}
	if err := in.Problem(); err != nil {
		t.Errorf("problem %v after a broken stream", err)
	}
}

// TestInformerSaysWhyAndRecovers: a refused list is the informer's
// problem, in the API server's words, until a list works again.
func TestInformerSaysWhyAndRecovers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    int
		message string
	}{
		{"forbidden by RBAC", http.StatusForbidden,
			`pods is forbidden: User "system:serviceaccount:kubelab:frontend" cannot list resource "pods" in API group "" in the namespace "kubelab"`},
		{"API server unavailable", http.StatusServiceUnavailable, "the server is currently unable to handle the request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := kubetest.NewServer(t)
			api.Apply(t, kube.Pods, ns, fixture(t, "pod.json", "web-a"))
			api.Refuse(kube.Pods, ns, tc.code, tc.message)
			in, _ := start(t, api, t.Context())

			eventually(t, "a problem", func() bool { return in.Problem() != nil })
			if got := in.Problem().Error(); got != "list pods: "+tc.message {
				t.Errorf("problem %q, want the API server's message", got)
			}
			if len(in.List()) != 0 {
				t.Errorf("objects %s before any list worked", names(in.List()))
			}
			api.Allow(kube.Pods, ns)
			eventually(t, "the problem over and the pod listed", func() bool { return in.Problem() == nil && names(in.List()) == "web-a@Running" })
		})
	}
}

// TestInformerPicksUpARotatedToken: once the kubelet has written a new
// token and the API server refuses the old one, the next requests carry
// the new one.
func TestInformerPicksUpARotatedToken(t *testing.T) {
	api := kubetest.NewServer(t)
	in, _ := start(t, api, t.Context())
	eventually(t, "a watch open", func() bool { return api.Watching(kube.Pods, ns) == 1 })

	api.RotateToken(t, "token-2")
	api.EndWatches()
	api.Apply(t, kube.Pods, ns, fixture(t, "pod.json", "web-a"))
	eventually(t, "the pod listed with the new token", func() bool { return names(in.List()) == "web-a@Running" && in.Problem() == nil })
}

// TestInformerStopsWithItsContext: Run returns when ctx ends, and its
// watch is closed.
func TestInformerStopsWithItsContext(t *testing.T) {
	for _, refused := range []bool{false, true} {
		t.Run(fmt.Sprint("refused=", refused), func(t *testing.T) {
			api := kubetest.NewServer(t)
			if refused {
				api.Refuse(kube.Pods, ns, http.StatusForbidden, "pods is forbidden")
			}
			ctx, cancel := context.WithCancel(t.Context())
			in, done := start(t, api, ctx)
			eventually(t, "watching or failing", func() bool { return api.Watching(kube.Pods, ns) == 1 || in.Problem() != nil })
			cancel()
			select {
			case <-done:
			case <-time.After(time.Second):
				t.Fatal("Run still running a second after its context ended")
			}
			eventually(t, "no watch open", func() bool { return api.Watching(kube.Pods, ns) == 0 })
		})
	}
}
