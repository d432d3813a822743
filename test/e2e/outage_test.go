//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func page(url string) (int, string, error) {
	resp, err := http.Get(url) //nolint:noctx // test
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestDatabaseOutageDegradesAndRecovers scales PostgreSQL to zero: imageproc
// turns unready, the frontend stays ready (READY_NEEDS_IMAGEPROC is false by
// default), so the gallery, reached through the frontend's Service, answers
// with a clear message instead of photos, and when PostgreSQL is back
// everything recovers by itself.
func TestDatabaseOutageDegradesAndRecovers(t *testing.T) {
	share(t, suiteNS)
	kubectl(t, "apply", "-k", "overlay")
	rollout(t, "statefulset", "postgres", "app.kubernetes.io/name=postgres")
	rollout(t, "deployment", "imageproc", "app.kubernetes.io/name=imageproc")
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")
	base := frontendURL(t)
	eventually(t, "the gallery", time.Minute, func() error {
		code, _, err := page(base + "/")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d", code)
		}
		return err
	})
	// (t.Context is already cancelled when cleanups run.)
	t.Cleanup(func() {
		_, _ = exec.Command("kubectl", "-n", nsOf(t), "scale", "statefulset/postgres", "--replicas=1").CombinedOutput()
	})

	kubectl(t, "-n", nsOf(t), "scale", "statefulset/postgres", "--replicas=0")
	eventually(t, "imageproc to turn unready", 2*time.Minute, func() error {
		ready := kubectl(t, "-n", nsOf(t), "get", "deployment", "imageproc", "-o", "jsonpath={.status.readyReplicas}")
		if ready != "" && ready != "0" {
			return fmt.Errorf("%s imageproc pods still ready", ready)
		}
		return nil
	})
	eventually(t, "the gallery to explain the outage", time.Minute, func() error {
		code, body, err := page(base + "/")
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || !strings.Contains(body, `id="degraded"`) || !strings.Contains(body, "imageproc unavailable") {
			return fmt.Errorf("status %d without the degraded message", code)
		}
		return nil
	})

	kubectl(t, "-n", nsOf(t), "scale", "statefulset/postgres", "--replicas=1")
	start := time.Now()
	eventually(t, "the gallery to recover by itself", 3*time.Minute, func() error {
		code, body, err := page(base + "/")
		if err == nil && (code != http.StatusOK || strings.Contains(body, `id="degraded"`)) {
			err = fmt.Errorf("status %d", code)
		}
		return err
	})
	t.Logf("recovered %v after PostgreSQL was scaled back to 1", time.Since(start).Round(time.Second))
}
