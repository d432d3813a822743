//go:build e2e

// Package e2e runs kubelab on the real test cluster (make cluster-up) and
// checks what only a cluster can show. Every wait has a timeout, and a
// failure prints the events, descriptions and logs of what it waited for.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const ns = "kubelab"

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "kubectl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// diagnose prints what a failed wait was about.
func diagnose(t *testing.T, selectors ...string) {
	t.Helper()
	out, _ := exec.Command("kubectl", "-n", ns, "get", "events", "--sort-by=.lastTimestamp").CombinedOutput()
	t.Logf("events:\n%s", tailLines(string(out), 40))
	for _, sel := range selectors {
		d, _ := exec.Command("kubectl", "-n", ns, "describe", "pods", "-l", sel).CombinedOutput()
		t.Logf("describe pods -l %s:\n%s", sel, tailLines(string(d), 60))
		l, _ := exec.Command("kubectl", "-n", ns, "logs", "-l", sel, "--all-containers", "--tail=30").CombinedOutput()
		t.Logf("logs -l %s:\n%s", sel, l)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func rollout(t *testing.T, kind, name, sel string) {
	t.Helper()
	if _, err := exec.CommandContext(t.Context(), "kubectl", "-n", ns, "rollout", "status", kind+"/"+name, "--timeout=240s").CombinedOutput(); err != nil {
		diagnose(t, sel)
		t.Fatalf("%s/%s did not roll out", kind, name)
	}
}

// frontendURL is the frontend Service's ClusterIP, reachable from the host
// through the route into the cluster's network namespace.
func frontendURL(t *testing.T) string {
	t.Helper()
	ip := strings.TrimSpace(kubectl(t, "-n", ns, "get", "svc", "frontend", "-o", "jsonpath={.spec.clusterIP}"))
	return "http://" + ip
}

func photo(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for y := range 480 {
		for x := range 640 {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// eventually retries fn for up to d: right after a rollout kube-proxy may
// still be writing its rules (CLUSTER.md §7).
func eventually(t *testing.T, what string, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			diagnose(t, "app.kubernetes.io/part-of=kubelab")
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(time.Second)
	}
}

func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url) //nolint:noctx // test
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return b, err
}

func TestMain(m *testing.M) {
	if os.Getenv("KUBECONFIG") == "" {
		fmt.Fprintln(os.Stderr, "e2e: KUBECONFIG is not set; run make cluster-up, then make e2e")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// TestDeployUploadSurvivesPodDeletion deploys the app into a namespace that
// enforces Pod Security "restricted" (the API server admits every pod),
// uploads a photo through the frontend, deletes the imageproc and
// PostgreSQL pods, and reads the photo back: the data lives on PVCs.
func TestDeployUploadSurvivesPodDeletion(t *testing.T) {
	kubectl(t, "apply", "-k", "overlay")
	if got := kubectl(t, "get", "ns", ns, "-o", "jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}"); got != "restricted" {
		t.Fatalf("namespace enforce label %q", got)
	}
	rollout(t, "statefulset", "postgres", "app.kubernetes.io/name=postgres")
	rollout(t, "deployment", "imageproc", "app.kubernetes.io/name=imageproc")
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")
	base := frontendURL(t)

	data := photo(t)
	var id string
	eventually(t, "upload through the frontend", time.Minute, func() error {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("file", "e2e.jpg")
		_, _ = fw.Write(data)
		_ = mw.Close()
		resp, err := http.Post(base+"/api/v1/images", mw.FormDataContentType(), &body) //nolint:noctx // test
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		var up struct{ Image struct{ ID string } }
		if err := json.Unmarshal(b, &up); err != nil {
			return err
		}
		id = up.Image.ID
		return nil
	})

	kubectl(t, "-n", ns, "delete", "pods", "-l", "app.kubernetes.io/name in (imageproc,postgres)", "--wait=true")
	rollout(t, "statefulset", "postgres", "app.kubernetes.io/name=postgres")
	rollout(t, "deployment", "imageproc", "app.kubernetes.io/name=imageproc")
	eventually(t, "the photo after the pods were replaced", 2*time.Minute, func() error {
		resp, err := http.Get(base + "/media/" + id) //nolint:noctx // test
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(b, data) {
			return fmt.Errorf("status %d, %d bytes (want %d)", resp.StatusCode, len(b), len(data))
		}
		return nil
	})
}
