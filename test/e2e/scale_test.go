//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func scale(t *testing.T, deployment string, replicas int) {
	t.Helper()
	kubectl(t, "-n", nsOf(t), "scale", "deployment/"+deployment, fmt.Sprintf("--replicas=%d", replicas))
	rollout(t, "deployment", deployment, "app.kubernetes.io/name="+deployment)
	eventually(t, fmt.Sprintf("%s at %d pods", deployment, replicas), 2*time.Minute, func() error {
		pods := strings.Fields(kubectl(t, "-n", nsOf(t), "get", "pods", "-l", "app.kubernetes.io/name="+deployment, "-o", "jsonpath={.items[*].metadata.name}"))
		if len(pods) != replicas {
			return fmt.Errorf("%d pods (some still terminating)", len(pods))
		}
		return nil
	})
}

// TestScaleUnderLoadSharesFairly scales imageproc 1 → 5 → 1 while loadgen
// lists photos through the frontend (each list is a call to imageproc): no
// request fails, and once the new pods are ready the frontend's client-side
// round robin gives each of the five a fair share of the calls, which one
// HTTP/2 connection to a ClusterIP would not.
func TestScaleUnderLoadSharesFairly(t *testing.T) {
	share(t, suiteNS)
	kubectl(t, "apply", "-k", "overlay")
	t.Cleanup(func() { _, _ = runKubectl("-n", nsOf(t), "scale", "deployment/imageproc", "--replicas=2") })
	scale(t, "imageproc", 1)
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")
	base := frontendURL(t)
	eventually(t, "the photo list", time.Minute, func() error {
		_, err := httpGet(base + "/api/v1/images")
		return err
	})

	const rate = 40
	lg := startLoad(t, base, rate, 120*time.Second, "--path", "/api/v1/images")
	time.Sleep(10 * time.Second)
	scale(t, "imageproc", 5)
	pods := strings.Fields(kubectl(t, "-n", nsOf(t), "get", "pods", "-l", "app.kubernetes.io/name=imageproc", "-o", "jsonpath={.items[*].metadata.name}"))
	// The frontend learns of new pods when it reads the headless
	// Service's DNS answer again: at the latest when imageproc's
	// MAX_CONNECTION_AGE (30s) closes a connection. Then measure 20 s.
	time.Sleep(40 * time.Second)
	from := time.Since(lg.started).Seconds()
	time.Sleep(20 * time.Second)
	to := time.Since(lg.started).Seconds()
	scale(t, "imageproc", 1)
	s := lg.wait(t)
	noFailures(t, s, 100*rate, "scaling imageproc 1 → 5 → 1")

	window := map[string]int{}
	total := 0
	for _, iv := range s.Intervals {
		if iv.At > from && iv.At <= to {
			for pod, n := range iv.Backends {
				window[pod] += n
				total += n
			}
		}
	}
	t.Logf("calls per imageproc pod in the 20 s after the new pods settled: %v", window)
	if total < 10*rate {
		t.Fatalf("only %d calls in the 20 s window", total)
	}
	for _, pod := range pods {
		// A fair share is a fifth; allow half of it for the randomness of
		// which frontend pod, and so which connection, each call takes.
		if n := window[pod]; float64(n) < 0.5*float64(total)/float64(len(pods)) {
			t.Errorf("pod %s served %d of %d calls, under half of a fair share (%v)", pod, n, total, window)
		}
	}
	for pod := range window {
		if !slices.Contains(pods, pod) {
			t.Errorf("calls answered by %s, which is not one of the five pods %v", pod, pods)
		}
	}
}
