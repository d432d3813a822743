//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPodDeletionLosesNothingAndCrashRestarts deletes a frontend pod while
// loadgen sends constant traffic to the Service: the ReplicaSet replaces it
// and not one request fails (readiness turns off first, the pod drains).
// Then the crash demo control makes one pod's process exit: kubelet
// restarts the container in place, and the page that pod serves shows the
// new start.
func TestPodDeletionLosesNothingAndCrashRestarts(t *testing.T) {
	share(t, suiteNS)
	base := deployOverlay(t)

	const rate = 40
	lg := startLoad(t, base, rate, 45*time.Second)
	time.Sleep(5 * time.Second)
	victim := strings.Fields(kubectl(t, "-n", nsOf(t), "get", "pods", "-l", "app.kubernetes.io/name=frontend", "-o", "jsonpath={.items[*].metadata.name}"))[0]
	deletePods(t, "app.kubernetes.io/name=frontend", victim)
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")
	s := lg.wait(t)
	noFailures(t, s, 40*rate, "deleting a frontend pod")
	if _, ok := s.Pods[victim]; !ok {
		t.Errorf("the deleted pod %s never answered: it was not under load (%v)", victim, s.Pods)
	}

	// The crash control, on one pod by its own address.
	enc := kubectl(t, "-n", nsOf(t), "get", "secret", "frontend", "-o", "jsonpath={.data.admin-token}")
	token, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	pod := strings.Fields(kubectl(t, "-n", nsOf(t), "get", "pods", "-l", "app.kubernetes.io/name=frontend",
		"--field-selector=status.phase=Running", "-o", "jsonpath={.items[0].metadata.name} {.items[0].status.podIP}"))
	name, url := pod[0], "http://"+pod[1]+":8080"
	before := podInfo(t, url).Pod.Starts
	restarts := kubectl(t, "-n", nsOf(t), "get", "pod", name, "-o", "jsonpath={.status.containerStatuses[0].restartCount}")
	// (A Secret rotated back by another test may take kubelet's sync
	// period to reach the pod: retry until the token is accepted.)
	eventually(t, "the crash control to accept the admin token", 3*time.Minute, func() error {
		req, _ := http.NewRequest(http.MethodPost, url+"/api/v1/admin/crash", nil) //nolint:noctx // test
		req.Header.Set("Authorization", "Bearer "+string(token))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	eventually(t, "kubelet to restart the crashed container", 2*time.Minute, func() error {
		if got := kubectl(t, "-n", nsOf(t), "get", "pod", name, "-o", "jsonpath={.status.containerStatuses[0].restartCount}"); got == restarts {
			return fmt.Errorf("restartCount still %s", got)
		}
		return nil
	})
	eventually(t, "the page to show the new start", time.Minute, func() error {
		_, body, err := page(url + "/")
		if err != nil {
			return err
		}
		if want := fmt.Sprintf(`id="panel-starts">%d`, before+1); !strings.Contains(body, want) {
			return fmt.Errorf("the panel lacks %s", want)
		}
		return nil
	})
	t.Logf("pod %s: restartCount %s → %s, the panel shows start %d",
		name, restarts, kubectl(t, "-n", nsOf(t), "get", "pod", name, "-o", "jsonpath={.status.containerStatuses[0].restartCount}"), before+1)
}

type info struct {
	Version string
	Pod     struct {
		Name   string
		Starts int
	}
}

func podInfo(t *testing.T, url string) info {
	t.Helper()
	var in info
	eventually(t, "info from "+url, time.Minute, func() error {
		b, err := httpGet(url + "/api/v1/info")
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &in)
	})
	return in
}
