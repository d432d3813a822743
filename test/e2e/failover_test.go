//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// uploads posts a new photo every period until stopped, and counts what
// failed: a bounded loop beside loadgen, which only reads.
type uploads struct {
	stop     context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex
	sent     int
	failures []string
}

func startUploads(t *testing.T, base string, period time.Duration) *uploads {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	u := &uploads{stop: cancel, done: make(chan struct{})}
	client := &http.Client{Timeout: 30 * time.Second}
	go func() {
		defer close(u.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for q := 0; ; q++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			// Another quality, other bytes: a new photo each time.
			data := photoQuality(t, 20+q%80)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/images?filename=failover.jpg", bytes.NewReader(data))
			req.Header.Set("Content-Type", "image/jpeg")
			resp, err := client.Do(req)
			if ctx.Err() != nil {
				return
			}
			u.mu.Lock()
			u.sent++
			switch {
			case err != nil:
				u.failures = append(u.failures, err.Error())
			case resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK:
				// The problem JSON says why (imageproc's status message).
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				u.failures = append(u.failures, fmt.Sprintf("status %d at %s: %s", resp.StatusCode,
					time.Now().UTC().Format("15:04:05.000"), bytes.TrimSpace(body)))
			}
			u.mu.Unlock()
			if resp != nil {
				_ = resp.Body.Close()
			}
		}
	}()
	return u
}

func (u *uploads) finish() (sent int, failures []string) {
	u.stop()
	<-u.done
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.sent, u.failures
}

// failureWindow is the time from the first to the end of the last second
// in which a request of s failed, or zero.
func failureWindow(s loadSummary) time.Duration {
	first, last := -1.0, -1.0
	for _, iv := range s.Intervals {
		if iv.Failed > 0 {
			if first < 0 {
				first = iv.At
			}
			last = iv.At
		}
	}
	if first < 0 {
		return 0
	}
	return time.Duration((last - first + 1) * float64(time.Second))
}

// TestImageprocPodsDeletedUnderLoad deletes imageproc pods while loadgen
// reads pages that need no imageproc (/api/v1/info) and pages that do
// (/api/v1/images), and a loop uploads photos. With two replicas, deleted
// one at a time, not one request fails: the frontends stay in their
// Service (their readiness does not follow imageproc), and their gRPC
// clients stop calling a draining pod at once and learn of its
// replacement within seconds. With one replica, only what needs imageproc
// fails, and only while no imageproc pod is ready.
func TestImageprocPodsDeletedUnderLoad(t *testing.T) {
	solo(t, suiteNS)
	base := deployOverlay(t)
	imageprocPods := func() []string {
		return strings.Fields(kubectl(t, "-n", nsOf(t), "get", "pods", "-l", "app.kubernetes.io/name=imageproc",
			"--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].metadata.name}"))
	}
	// servedBy waits until pod has answered one of the frontend's calls:
	// then every frontend pod's client has it in its rotation.
	servedBy := func(pod string) {
		eventually(t, pod+" serving the frontend's calls", time.Minute, func() error {
			for range 20 {
				resp, err := http.Get(base + "/api/v1/images") //nolint:noctx // test
				if err != nil {
					return err
				}
				_ = resp.Body.Close()
				if resp.Header.Get("X-Backend-Served-By") == pod {
					return nil
				}
			}
			return fmt.Errorf("20 calls, none answered by %s", pod)
		})
	}

	const rate = 25
	info := startLoad(t, base, rate, 10*time.Minute, "--path", "/api/v1/info")
	images := startLoad(t, base, rate, 10*time.Minute, "--path", "/api/v1/images")
	up := startUploads(t, base, 250*time.Millisecond)
	time.Sleep(5 * time.Second)
	for _, victim := range imageprocPods() {
		deletePods(t, "app.kubernetes.io/name=imageproc", victim)
		rollout(t, "deployment", "imageproc", "app.kubernetes.io/name=imageproc")
		for _, p := range imageprocPods() {
			servedBy(p)
		}
	}
	time.Sleep(5 * time.Second)
	sent, failed := up.finish()
	t.Logf("uploads: %d sent, %d failed %v", sent, len(failed), failed)
	noFailures(t, info.stop(t), 30*rate, "/api/v1/info while imageproc pods were deleted one at a time")
	noFailures(t, images.stop(t), 30*rate, "/api/v1/images while imageproc pods were deleted one at a time")
	if len(failed) != 0 || sent < 40 {
		t.Fatalf("uploads while imageproc pods were deleted one at a time: %d of %d failed (want 0 of at least 40): %v", len(failed), sent, failed)
	}

	// One replica: deleting it leaves no imageproc for a while.
	kubectl(t, "-n", nsOf(t), "scale", "deployment/imageproc", "--replicas=1")
	rollout(t, "deployment", "imageproc", "app.kubernetes.io/name=imageproc")
	eventually(t, "one imageproc pod", 2*time.Minute, func() error {
		if p := imageprocPods(); len(p) != 1 {
			return fmt.Errorf("imageproc pods %v", p)
		}
		return nil
	})
	info = startLoad(t, base, rate, 10*time.Minute, "--path", "/api/v1/info")
	images = startLoad(t, base, rate, 10*time.Minute, "--path", "/api/v1/images")
	time.Sleep(5 * time.Second)
	deletePods(t, "app.kubernetes.io/name=imageproc", imageprocPods()...)
	rollout(t, "deployment", "imageproc", "app.kubernetes.io/name=imageproc")
	servedBy(imageprocPods()[0])
	time.Sleep(5 * time.Second)
	noFailures(t, info.stop(t), 20*rate, "/api/v1/info while the only imageproc pod was replaced")
	s := images.stop(t)
	window := failureWindow(s)
	t.Logf("the only imageproc pod replaced: %d of %d calls that need it failed, within %v", s.Failed, s.Sent, window)
	// README: about as long as the replacement takes to turn ready.
	if window > 45*time.Second {
		t.Errorf("calls that need imageproc failed for %v (want at most 45s): %v", window, s.Failures)
	}
	if last := s.Intervals[len(s.Intervals)-1]; last.Failed != 0 {
		t.Errorf("the last second still failed %d calls: %v", last.Failed, s.Failures)
	}
	kubectl(t, "-n", nsOf(t), "scale", "deployment/imageproc", "--replicas=2")
}
