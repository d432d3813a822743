//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// podURLs are the frontend pods' own addresses (the host routes the pod
// network), so each pod can be asked directly.
func podURLs(t *testing.T) []string {
	t.Helper()
	var urls []string
	for _, ip := range strings.Fields(kubectl(t, "-n", nsOf(t), "get", "pods", "-l", "app.kubernetes.io/name=frontend",
		"--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].status.podIP}")) {
		urls = append(urls, "http://"+ip+":8080")
	}
	return urls
}

func bearer(url, token string) int {
	req, _ := http.NewRequest(http.MethodGet, url+"/api/v1/admin/demo", nil) //nolint:noctx // test
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestConfigMapAndSecretChangesApplyLive edits the frontend's live
// ConfigMap and rotates its Secret: every pod shows the new banner and
// accepts only the new token within kubelet's sync period, with no restart.
func TestConfigMapAndSecretChangesApplyLive(t *testing.T) {
	share(t, suiteNS)
	kubectl(t, "apply", "-k", "overlay")
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")
	t.Cleanup(func() { _, _ = exec.Command("kubectl", "apply", "-k", "overlay").CombinedOutput() })
	restarts := kubectl(t, "-n", nsOf(t), "get", "pods", "-l", "app.kubernetes.io/name=frontend", "-o", "jsonpath={.items[*].status.containerStatuses[0].restartCount}")

	banner := fmt.Sprintf("e2e banner %d", time.Now().UnixNano())
	kubectl(t, "-n", nsOf(t), "patch", "configmap", "frontend-live", "--type=merge", "-p", `{"data":{"banner":"`+banner+`"}}`)
	start := time.Now()
	for _, u := range podURLs(t) {
		eventually(t, "the new banner on "+u, 3*time.Minute, func() error {
			b, err := httpGet(u + "/api/v1/info")
			if err == nil && !bytes.Contains(b, []byte(banner)) {
				err = fmt.Errorf("banner not there yet")
			}
			return err
		})
	}
	t.Logf("every pod showed the new banner %v after the edit", time.Since(start).Round(time.Second))

	const newToken = "e2e-rotated-token"
	secret := kubectl(t, "-n", nsOf(t), "create", "secret", "generic", "frontend", "--from-literal=admin-token="+newToken,
		"--from-literal=session-key=kubelab-demo-session-key-0123456789", "--dry-run=client", "-o", "yaml")
	apply := exec.CommandContext(t.Context(), "kubectl", "-n", nsOf(t), "apply", "-f", "-")
	apply.Stdin = strings.NewReader(secret)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("rotate the Secret: %v\n%s", err, out)
	}
	for _, u := range podURLs(t) {
		eventually(t, "the rotated token on "+u, 3*time.Minute, func() error {
			if bearer(u, newToken) != http.StatusOK || bearer(u, "kubelab-demo-admin-token") != http.StatusUnauthorized {
				return fmt.Errorf("still the old token")
			}
			return nil
		})
	}
	if after := kubectl(t, "-n", nsOf(t), "get", "pods", "-l", "app.kubernetes.io/name=frontend", "-o", "jsonpath={.items[*].status.containerStatuses[0].restartCount}"); after != restarts {
		t.Fatalf("restart counts went from %q to %q: the changes needed restarts", restarts, after)
	}
}

func bigPhoto(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 2400, 1600))
	for y := range 1600 {
		for x := range 2400 {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 3), uint8(x + y), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func postJSON(t *testing.T, url, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body)) //nolint:noctx // test
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode >= 300 {
		t.Fatalf("POST %s: %d %v", url, resp.StatusCode, m)
	}
	return m
}

// TestWorkerJobKilledPodEveryTaskOnce runs the work-queue Job (parallelism
// 3) on a batch, kills one worker pod mid-batch, and checks that the Job
// completes with every task done once and one variant per photo.
func TestWorkerJobKilledPodEveryTaskOnce(t *testing.T) {
	share(t, suiteNS)
	base := deployOverlay(t)
	data := bigPhoto(t)
	const photos = 120
	var ids []string
	for i := range photos {
		ids = append(ids, upload(t, base, fmt.Sprintf("job%02d.jpg", i), data))
	}
	idsJSON, _ := json.Marshal(ids)
	batch := postJSON(t, base+"/api/v1/batches", `{"image_ids":`+string(idsJSON)+`,"operations":[{"thumbnail":{"size":300}}]}`)["batch"].(map[string]any)["id"].(string)

	manifest, err := os.ReadFile("../../manifests/worker/job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	create := exec.CommandContext(t.Context(), "kubectl", "-n", nsOf(t), "create", "-f", "-")
	create.Stdin = strings.NewReader(strings.ReplaceAll(string(manifest), "image: kubelab/worker:0.1.0", "image: localhost/kubelab-worker:0.1.0"))
	out, err := create.CombinedOutput()
	if err != nil {
		t.Fatalf("create the Job: %v\n%s", err, out)
	}
	job := regexp.MustCompile(`job\.batch/(\S+) created`).FindStringSubmatch(string(out))[1]
	t.Cleanup(func() {
		_, _ = exec.Command("kubectl", "-n", nsOf(t), "delete", "job", job, "--wait=false").CombinedOutput()
	})

	done := func() float64 {
		b, err := httpGet(base + "/api/v1/batches/" + batch)
		if err != nil {
			return -1
		}
		var r struct{ Batch map[string]float64 }
		_ = json.Unmarshal(b, &r)
		return r.Batch["done"]
	}
	// Kill as soon as work is under way, so the victim holds leases: the
	// first running worker pod once a task is done.
	var victim []string
	for deadline := time.Now().Add(3 * time.Minute); len(victim) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			diagnose(t, "job-name="+job)
			t.Fatal("the workers did not get going")
		}
		if d := done(); d >= photos {
			t.Fatal("the batch finished before a worker pod could be killed")
		} else if d < 1 {
			continue
		}
		out, _ := runKubectl("-n", nsOf(t), "get", "pods", "-l", "job-name="+job, "--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].metadata.name}")
		victim = strings.Fields(out)
	}
	kubectl(t, "-n", nsOf(t), "delete", "pod", victim[0], "--grace-period=0", "--force")
	t.Logf("killed %s at done=%v", victim[0], done())

	if _, err := exec.CommandContext(t.Context(), "kubectl", "-n", nsOf(t), "wait", "--for=condition=Complete", "job/"+job, "--timeout=300s").CombinedOutput(); err != nil {
		diagnose(t, "job-name="+job)
		t.Fatalf("Job %s did not complete", job)
	}
	b, _ := httpGet(base + "/api/v1/batches/" + batch)
	var r struct{ Batch map[string]float64 }
	_ = json.Unmarshal(b, &r)
	if r.Batch["done"] != photos || r.Batch["failed"] != 0 || r.Batch["pending"]+r.Batch["leased"] != 0 {
		t.Fatalf("batch after the Job: %v", r.Batch)
	}
	for _, id := range ids {
		b, err := httpGet(base + "/api/v1/images/" + id)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(b, []byte(`"spec":"thumbnail(300)|format(jpeg,85)"`)); n != 1 {
			t.Fatalf("image %s has %d thumbnail(300) variants, want 1", id, n)
		}
	}
}
