//go:build e2e

// Package e2e runs kubelab on the real test cluster (make cluster-up) and
// checks what only a cluster can show. Every wait has a timeout, and a
// failure prints the events, descriptions and logs of what it waited for.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests share one cluster in three ways. Those in the learner's
// namespace (the lessons, the README's minikube path, the dry runs) take
// turns there; those of the suite's own overlay (test/e2e/overlay, its own
// namespace and Ingress host) take turns in theirs; and the two kinds run
// side by side, on the first node: the others stay parked, as the course's
// single node until lesson 21 adds them. A test of several nodes (drains,
// a node's death, spread) runs first, alone with every node, then parks
// them again; lesson 21 runs alone at the end of the lessons.
const (
	learnerNS = "kubelab"
	suiteNS   = "kubelab-e2e"
)

var (
	// nodesInUse is held shared by the tests that run side by side on the
	// first node, and exclusively by a test that needs every node.
	nodesInUse sync.RWMutex
	// turns serialises the tests of one namespace.
	turns = map[string]*sync.Mutex{learnerNS: {}, suiteNS: {}}
	// namespaceOf maps each top-level test to the namespace it works in.
	namespaceOf sync.Map
)

// nsOf is the namespace of t's top-level test.
func nsOf(t testing.TB) string {
	top, _, _ := strings.Cut(t.Name(), "/")
	if v, ok := namespaceOf.Load(top); ok {
		return v.(string)
	}
	return learnerNS
}

// share runs t beside the other tests on the first node, after the tests
// before it in namespace have finished. The turn comes first: a test
// waiting for its turn holds nothing another needs.
func share(t *testing.T, namespace string) {
	t.Parallel()
	turns[namespace].Lock()
	nodesInUse.RLock()
	namespaceOf.Store(t.Name(), namespace)
	t.Cleanup(func() {
		nodesInUse.RUnlock()
		turns[namespace].Unlock()
	})
}

// alone runs t with every node unparked, and parks them again after t's
// own cleanups. It is not parallel: Go runs such tests one by one before
// it starts the parallel ones, so nothing else runs beside t.
func alone(t *testing.T, namespace string) {
	nodesInUse.Lock()
	namespaceOf.Store(t.Name(), namespace)
	t.Cleanup(func() {
		parkNodes(t, "node-park")
		nodesInUse.Unlock()
	})
	parkNodes(t, "node-unpark")
}

// solo runs t alone on the first node, the others parked. Like alone it is
// not parallel, so nothing runs beside it: for a test whose claim of no
// failed request under pod churn should not share the two cores with the
// lessons (it failed once, with 6 of 1674 requests, when it did).
func solo(t *testing.T, namespace string) {
	nodesInUse.Lock()
	namespaceOf.Store(t.Name(), namespace)
	t.Cleanup(nodesInUse.Unlock)
}

// parkNodes runs cluster.sh node-park or node-unpark: a NoExecute taint on
// every node but the first keeps every pod off them, DaemonSets' too.
func parkNodes(t testing.TB, verb string) {
	if out, err := exec.Command("../../"+clusterScript, verb).CombinedOutput(); err != nil {
		t.Errorf("cluster.sh %s: %v\n%s", verb, err, out)
	}
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "kubectl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// runKubectl is kubectl for cleanups and probes, where a failure is an
// answer, not a test failure.
func runKubectl(args ...string) (string, error) {
	out, err := exec.Command("kubectl", args...).CombinedOutput()
	return string(out), err
}

// freshNamespace deletes the namespace, so the test deploys as a first
// install, and deletes it again when the test ends, so the next test's
// overlay does not meet objects it does not own.
func freshNamespace(t *testing.T) {
	t.Helper()
	kubectl(t, "delete", "namespace", nsOf(t), "--ignore-not-found", "--wait=true", "--timeout=180s")
	t.Cleanup(func() {
		_, _ = runKubectl("delete", "namespace", nsOf(t), "--ignore-not-found", "--wait=true", "--timeout=180s")
	})
}

// deployOverlay applies the e2e overlay and returns the frontend
// Service's URL once imageproc and the frontend have rolled out and it
// answers.
func deployOverlay(t *testing.T) string {
	t.Helper()
	return deploy(t, "overlay", "/api/v1/info", "deployment/imageproc", "deployment/frontend")
}

// deploy applies the kustomization dir, waits for each workload
// ("kind/name") to roll out and for the frontend to answer path, and
// returns the frontend Service's URL.
func deploy(t *testing.T, dir, path string, workloads ...string) string {
	t.Helper()
	kubectl(t, "apply", "-k", dir)
	for _, w := range workloads {
		kind, name, _ := strings.Cut(w, "/")
		rollout(t, kind, name, "app.kubernetes.io/name="+name)
	}
	base := frontendURL(t)
	eventually(t, "the frontend answering "+path, time.Minute, func() error {
		_, err := httpGet(base + path)
		return err
	})
	return base
}

// upload posts a photo to the frontend's JSON API, retrying for a minute,
// and returns the new image's ID.
func upload(t *testing.T, base, filename string, data []byte) string {
	t.Helper()
	var id string
	eventually(t, "upload "+filename, time.Minute, func() error {
		resp, err := http.Post(base+"/api/v1/images?filename="+filename, "image/jpeg", bytes.NewReader(data)) //nolint:noctx // test
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var up struct{ Image struct{ ID string } }
		if err := json.NewDecoder(resp.Body).Decode(&up); err != nil {
			return fmt.Errorf("status %d: %w", resp.StatusCode, err)
		}
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		id = up.Image.ID
		return nil
	})
	return id
}

// deletePods deletes the named pods, or with no names every pod sel
// selects, and waits, boundedly, until they are gone; on a timeout it
// prints what the pods of sel were doing instead of hanging the suite.
func deletePods(t *testing.T, sel string, names ...string) {
	t.Helper()
	args := []string{"-n", nsOf(t), "delete", "pods", "--wait=true", "--timeout=180s"}
	if len(names) == 0 {
		names = []string{"-l", sel}
	}
	args = append(args, names...)
	if out, err := exec.CommandContext(t.Context(), "kubectl", args...).CombinedOutput(); err != nil {
		diagnose(t, sel)
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// diagnose prints what a failed wait was about.
func diagnose(t *testing.T, selectors ...string) {
	t.Helper()
	out, _ := exec.Command("kubectl", "-n", nsOf(t), "get", "events", "--sort-by=.lastTimestamp").CombinedOutput()
	t.Logf("events:\n%s", tailLines(string(out), 40))
	for _, sel := range selectors {
		d, _ := exec.Command("kubectl", "-n", nsOf(t), "describe", "pods", "-l", sel).CombinedOutput()
		t.Logf("describe pods -l %s:\n%s", sel, tailLines(string(d), 60))
		l, _ := exec.Command("kubectl", "-n", nsOf(t), "logs", "-l", sel, "--all-containers", "--tail=30").CombinedOutput()
		t.Logf("logs -l %s:\n%s", sel, l)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func rollout(t *testing.T, kind, name, sel string) {
	t.Helper()
	if _, err := exec.CommandContext(t.Context(), "kubectl", "-n", nsOf(t), "rollout", "status", kind+"/"+name, "--timeout=240s").CombinedOutput(); err != nil {
		diagnose(t, sel)
		t.Fatalf("%s/%s did not roll out", kind, name)
	}
}

// frontendURL is the frontend Service's ClusterIP, reachable from the host
// through the route into the cluster's network namespace.
func frontendURL(t *testing.T) string {
	t.Helper()
	ip := strings.TrimSpace(kubectl(t, "-n", nsOf(t), "get", "svc", "frontend", "-o", "jsonpath={.spec.clusterIP}"))
	return "http://" + ip
}

// nodeIP is where the test cluster's node, and so its hostPorts and
// NodePorts, answer from the host; the Ingress controller listens on its
// ports 80 and 443, as minikube's ingress addon does on `minikube ip`.
const nodeIP = "10.200.0.2"

// ingressHost is the host the frontend's Ingress rule routes in the
// learner's namespace; suiteHost in the suite's (test/e2e/overlay).
const (
	ingressHost = "kubelab.local"
	suiteHost   = "e2e.kubelab.local"
)

// viaIngress is an HTTP client that reaches ingressHost and suiteHost at
// the node, as a line "10.200.0.2 kubelab.local" in /etc/hosts would: the
// request carries the Host header the Ingress rule matches.
var viaIngress = ingressClient(nil)

// ingressClient is viaIngress with a TLS configuration, for HTTPS.
func ingressClient(tlsConfig *tls.Config) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: tlsConfig,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if host, port, err := net.SplitHostPort(addr); err == nil && (host == ingressHost || host == suiteHost) {
					addr = net.JoinHostPort(nodeIP, port)
				}
				return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			},
		},
	}
}

func photo(t *testing.T) []byte {
	t.Helper()
	return photoQuality(t, 85)
}

// photoQuality encodes the same picture at another JPEG quality: other
// bytes, so another photo to imageproc, which keys content by its hash.
func photoQuality(t *testing.T, quality int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for y := range 480 {
		for x := range 640 {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// eventually retries fn for up to d: right after a rollout kube-proxy may
// still be writing its rules (a request sent the moment `rollout status`
// returned has failed where the same request a moment later succeeded).
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
	if out, err := exec.Command("../../"+clusterScript, "node-park").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: parking the nodes: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_, _ = exec.Command("kubectl", "delete", "namespace", suiteNS, "--ignore-not-found", "--wait=false").CombinedOutput()
	if out, err := exec.Command("../../"+clusterScript, "node-unpark").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: unparking the nodes: %v\n%s", err, out)
		code = 1
	}
	os.Exit(code)
}

// TestDeployUploadSurvivesPodDeletion deploys the app into a namespace that
// enforces Pod Security "restricted" (the API server admits every pod),
// uploads a photo through the Ingress, deletes the imageproc and
// PostgreSQL pods, and reads the photo back: the data lives on PVCs.
func TestDeployUploadSurvivesPodDeletion(t *testing.T) {
	share(t, suiteNS)
	kubectl(t, "apply", "-k", "overlay")
	if got := kubectl(t, "get", "ns", nsOf(t), "-o", "jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}"); got != "restricted" {
		t.Fatalf("namespace enforce label %q", got)
	}
	rollout(t, "statefulset", "postgres", "app.kubernetes.io/name=postgres")
	rollout(t, "deployment", "imageproc", "app.kubernetes.io/name=imageproc")
	rollout(t, "deployment", "frontend", "app.kubernetes.io/name=frontend")
	base := "http://" + suiteHost
	eventually(t, "the Ingress's address in its status", time.Minute, func() error {
		if got := kubectl(t, "-n", nsOf(t), "get", "ingress", "frontend", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"); got != nodeIP {
			return fmt.Errorf("status address %q, want %s", got, nodeIP)
		}
		return nil
	})

	data := photo(t)
	var id string
	eventually(t, "upload through the Ingress", time.Minute, func() error {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("file", "e2e.jpg")
		_, _ = fw.Write(data)
		_ = mw.Close()
		resp, err := viaIngress.Post(base+"/api/v1/images", mw.FormDataContentType(), &body) //nolint:noctx // test
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
	// A Host no rule matches gets the controller's 404, not the app.
	req, _ := http.NewRequest(http.MethodGet, "http://"+nodeIP+"/api/v1/info", nil) //nolint:noctx // test
	req.Host = "other.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("a host no Ingress rule names: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("X-Served-By") != "" {
		t.Fatalf("a host no Ingress rule names: status %d, served by %q", resp.StatusCode, resp.Header.Get("X-Served-By"))
	}

	deletePods(t, "app.kubernetes.io/name in (imageproc,postgres)")
	rollout(t, "statefulset", "postgres", "app.kubernetes.io/name=postgres")
	rollout(t, "deployment", "imageproc", "app.kubernetes.io/name=imageproc")
	eventually(t, "the photo after the pods were replaced", 2*time.Minute, func() error {
		resp, err := viaIngress.Get(base + "/media/" + id) //nolint:noctx // test
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
