//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// viewSnapshot is the part of the live view's snapshot these tests read.
type viewSnapshot struct {
	Problems    []string `json:"problems"`
	Deployments []struct {
		Name     string   `json:"name"`
		Replicas []viewRS `json:"replicaSets"`
	} `json:"deployments"`
}

type viewRS struct {
	Name     string `json:"name"`
	Revision string `json:"revision"`
	Image    string `json:"image"`
	Desired  int32  `json:"desired"`
	Ready    int32  `json:"ready"`
}

func (rs viewRS) String() string {
	return fmt.Sprintf("r%s %s %d/%d", rs.Revision, rs.Image[strings.LastIndex(rs.Image, ":")+1:], rs.Ready, rs.Desired)
}

// replicaSets is the named Deployment's ReplicaSets, newest first.
func (s viewSnapshot) replicaSets(deployment string) []viewRS {
	for _, d := range s.Deployments {
		if d.Name == deployment {
			return d.Replicas
		}
	}
	return nil
}

// liveView follows the frontend's /cluster/stream the way the page's
// EventSource does: when a stream ends (the frontend pod relaying it
// stopped, as every one does in a rollout) it connects again, through the
// Service, to another pod. It keeps every snapshot.
type liveView struct {
	mu       sync.Mutex
	seen     []viewSnapshot
	streams  int
	changed  chan struct{}
	stop     context.CancelFunc
	finished chan struct{}
}

func watchLiveView(t *testing.T, base string) *liveView {
	t.Helper()
	ctx, stop := context.WithCancel(t.Context())
	v := &liveView{changed: make(chan struct{}, 1), stop: stop, finished: make(chan struct{})}
	go func() {
		defer close(v.finished)
		for ctx.Err() == nil {
			v.follow(ctx, base+"/cluster/stream")
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second): // the stream's "retry: 2000"
			}
		}
	}()
	t.Cleanup(func() { v.stop(); <-v.finished })
	return v
}

// follow reads one stream until it ends.
func (v *liveView) follow(ctx context.Context, url string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	v.mu.Lock()
	v.streams++
	v.mu.Unlock()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var s viewSnapshot
		if json.Unmarshal([]byte(data), &s) != nil {
			continue
		}
		v.mu.Lock()
		v.seen = append(v.seen, s)
		v.mu.Unlock()
		select {
		case v.changed <- struct{}{}:
		default:
		}
	}
}

// mark is where the snapshots still to come, and the latest (it is still
// the state), begin: waitFor(mark()) ignores what came before.
func (v *liveView) mark() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return max(len(v.seen)-1, 0)
}

// waitFor waits up to d for a snapshot from the mark on that satisfies ok.
func (v *liveView) waitFor(t *testing.T, from int, what string, d time.Duration, ok func(viewSnapshot) bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		v.mu.Lock()
		for _, s := range v.seen[from:] {
			if ok(s) {
				v.mu.Unlock()
				return
			}
		}
		from = len(v.seen)
		last := "none yet"
		if from > 0 {
			last = fmt.Sprint(v.seen[from-1].replicaSets("frontend"), v.seen[from-1].Problems)
		}
		v.mu.Unlock()
		select {
		case <-v.changed:
		case <-deadline:
			t.Fatalf("the live view showed no %s within %v; its last snapshot: %s", what, d, last)
		}
	}
}

// all is every snapshot so far, and how many streams delivered them.
func (v *liveView) all() ([]viewSnapshot, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]viewSnapshot(nil), v.seen...), v.streams
}

// settledAt is true when the frontend's newest ReplicaSet runs image tag
// with every replica ready, and the older ones are scaled to zero.
func settledAt(tag string, replicas int32) func(viewSnapshot) bool {
	return func(s viewSnapshot) bool {
		rs := s.replicaSets("frontend")
		if len(rs) == 0 || !strings.HasSuffix(rs[0].Image, ":"+tag) || rs[0].Desired != replicas || rs[0].Ready != replicas {
			return false
		}
		for _, old := range rs[1:] {
			if old.Desired != 0 {
				return false
			}
		}
		return true
	}
}

// bothVersions is true while an old and a new ReplicaSet both have pods
// wanted: a rolling update (or its undo) in the middle.
func bothVersions(s viewSnapshot) bool {
	tags := map[string]bool{}
	for _, rs := range s.replicaSets("frontend") {
		if rs.Desired > 0 {
			tags[rs.Image[strings.LastIndex(rs.Image, ":")+1:]] = true
		}
	}
	return tags["0.1.0"] && tags["0.2.0"]
}
