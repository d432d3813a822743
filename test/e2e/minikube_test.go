//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// make runs a target of the repository's Makefile exactly as a reader of
// the README would, against the test cluster.
func makeTarget(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "make", append([]string{"--no-print-directory", "-C", "../.."}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		diagnose(t, "app.kubernetes.io/part-of=kubelab")
		t.Fatalf("make %s: %v", strings.Join(args, " "), err)
	}
}

func replicas(t *testing.T, deployment string) int {
	t.Helper()
	n, _ := strconv.Atoi(kubectl(t, "-n", ns, "get", "deployment", deployment, "-o", "jsonpath={.spec.replicas}"))
	return n
}

// TestMinikubeOverlayDemosAndAutoscaling deploys the minikube overlay with
// `make deploy-minikube`, as the README says, and runs the demo targets as
// written while loadgen sends constant traffic through the NodePort: not
// one request fails while imageproc scales 2 → 5 → 2, the frontend rolls
// to 0.2.0 and back. Then heavy load makes the HorizontalPodAutoscaler add
// frontend pods, and they go again when the load stops.
func TestMinikubeOverlayDemosAndAutoscaling(t *testing.T) {
	freshNamespace(t)
	makeTarget(t, "deploy-minikube")
	nodePort := "http://" + nodeIP + ":30080"
	eventually(t, "the NodePort", time.Minute, func() error {
		_, err := httpGet(nodePort + "/api/v1/images")
		return err
	})
	eventually(t, "the Ingress", time.Minute, func() error {
		resp, err := viaIngress.Get("http://" + ingressHost + "/api/v1/info") //nolint:noctx // test
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Served-By") == "" {
			return fmt.Errorf("status %d, served by %q", resp.StatusCode, resp.Header.Get("X-Served-By"))
		}
		return nil
	})

	const rate = 30
	lg := startLoad(t, nodePort, rate, 10*time.Minute, "--path", "/api/v1/images")
	time.Sleep(5 * time.Second)
	makeTarget(t, "demo-scale")
	if n := replicas(t, "imageproc"); n != 5 && n != 2 {
		// The HPA keeps 5 for its stabilization window, then goes to 2.
		t.Errorf("imageproc at %d replicas after demo-scale", n)
	}
	makeTarget(t, "demo-rollout", "NEW_TAG=0.2.0")
	// Right after the rollout, kube-proxy may still route a request or two
	// to an old pod finishing its graceful shutdown.
	eventually(t, "the frontend answering as 0.2.0 after demo-rollout", 30*time.Second, func() error {
		if v := podInfo(t, nodePort).Version; v != "0.2.0" {
			return fmt.Errorf("a frontend says version %q", v)
		}
		return nil
	})
	if h := kubectl(t, "-n", ns, "rollout", "history", "deployment/frontend"); !strings.Contains(h, "set image kubelab/frontend:0.2.0") {
		t.Errorf("rollout history lacks demo-rollout's change-cause:\n%s", h)
	}
	makeTarget(t, "demo-rollback")
	time.Sleep(5 * time.Second)
	s := lg.stop(t)
	noFailures(t, s, 60*rate, "demo-scale, demo-rollout and demo-rollback")
	if s.Versions["0.1.0"] == 0 || s.Versions["0.2.0"] == 0 {
		t.Errorf("versions seen %v, want both 0.1.0 and 0.2.0", s.Versions)
	}
	if last := s.Intervals[len(s.Intervals)-1].Versions; len(last) != 1 || last["0.1.0"] == 0 {
		t.Errorf("after demo-rollback the last second was answered by %v, want 0.1.0 only", last)
	}
	if len(s.Backends) < 5 {
		t.Errorf("only %d imageproc pods answered during demo-scale, want 5: %v", len(s.Backends), s.Backends)
	}

	// Autoscaling: the gallery page costs the frontend CPU; 70% of a
	// 50m request per pod is soon passed.
	floor := replicas(t, "frontend")
	heavy := startLoad(t, nodePort, 250, 5*time.Minute, "--path", "/")
	start := time.Now()
	eventually(t, "the HPA to add frontend pods", 4*time.Minute, func() error {
		if n := replicas(t, "frontend"); n <= floor {
			return fmt.Errorf("frontend at %d replicas; hpa: %s", n, kubectl(t, "-n", ns, "get", "hpa", "frontend", "--no-headers"))
		}
		return nil
	})
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")
	peak := replicas(t, "frontend")
	t.Logf("the HPA scaled the frontend %d → %d in %v", floor, peak, time.Since(start).Round(time.Second))
	hs := heavy.stop(t)
	if hs.Failed > hs.Sent/100 {
		t.Errorf("%d of %d requests failed under heavy load: %v", hs.Failed, hs.Sent, hs.Failures)
	}
	start = time.Now()
	eventually(t, "the HPA to remove the extra pods", 5*time.Minute, func() error {
		if n := replicas(t, "frontend"); n != floor {
			return fmt.Errorf("frontend at %d replicas, want %d", n, floor)
		}
		return nil
	})
	t.Logf("and back to %d, %v after the load stopped", floor, time.Since(start).Round(time.Second))

	makeTarget(t, "undeploy")
	if out, err := runKubectl("get", "namespace", ns); err == nil {
		t.Errorf("make undeploy left the namespace: %s", out)
	}
}
