//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readmeCommands returns the command lines of the README's minikube
// walk-through: the first sh block under "## On Kubernetes", comments
// stripped. The test runs them as a learner types them, so the README
// cannot drift from what works.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	section, block := false, false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			section = line == "## On Kubernetes"
		case section && line == "```sh":
			block = true
		case block && line == "```":
			return cmds
		case block:
			if cmd, _, _ := strings.Cut(line, " #"); strings.TrimSpace(cmd) != "" {
				cmds = append(cmds, strings.TrimSpace(cmd))
			}
		}
	}
	t.Fatal("README.md has no sh block under \"## On Kubernetes\"")
	return nil
}

// learner runs a README command line in the repository with bash, as a
// reader pastes it, and returns what it printed.
func learner(t *testing.T, line string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "bash", "-c", line)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	t.Logf("$ %s\n%s", line, out)
	if err != nil {
		diagnose(t, "app.kubernetes.io/part-of=kubelab")
		t.Fatalf("%s: %v", line, err)
	}
	return string(out)
}

// mustPrint fails unless out matches every pattern.
func mustPrint(t *testing.T, line, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(out) {
			t.Errorf("%s: output lacks %q", line, p)
		}
	}
}

func replicas(t *testing.T, deployment string) int {
	t.Helper()
	n, _ := strconv.Atoi(kubectl(t, "-n", nsOf(t), "get", "deployment", deployment, "-o", "jsonpath={.spec.replicas}"))
	return n
}

// TestMinikubeREADME follows the README's minikube walk-through on the
// test cluster, line by line, and checks what each command prints. Only
// what needs minikube itself is stood in for: `minikube start` (the test
// cluster has the ingress controller and metrics-server), `make
// images-minikube` (cluster-up imported the images that target builds,
// under the same names) and `minikube service --url` (the NodePort on the
// node's address). While the demo targets run, loadgen sends constant
// traffic through the NodePort and not one request may fail; between the
// rollback and undeploy, heavy load makes the HPA add frontend pods and
// remove them after.
func TestMinikubeREADME(t *testing.T) {
	share(t, learnerNS)
	freshNamespace(t)
	nodePort := "http://" + nodeIP + ":30080"
	const rate = 30
	var lg *load

	steps := []struct {
		prefix string
		run    func(t *testing.T, line string)
	}{
		{"minikube start", func(t *testing.T, _ string) {
			kubectl(t, "get", "apiservice", "v1beta1.metrics.k8s.io")
			kubectl(t, "get", "ingressclass", "nginx")
		}},
		{"make images-minikube", func(t *testing.T, line string) {
			// Not run (it needs minikube): cluster-up imported exactly the
			// images it would build, under the same names, and no others.
			out := learner(t, "make --no-print-directory -n images-minikube")
			var want []string
			for _, m := range regexp.MustCompile(`-t (kubelab/\S+)`).FindAllStringSubmatch(out, -1) {
				want = append(want, "docker.io/"+m[1])
			}
			slices.Sort(want)
			if len(want) == 0 {
				t.Fatalf("%s builds nothing", line)
			}
			// Every node, as `minikube image build --all` builds on each. A
			// kubelet lists its images in the node's status some seconds
			// after they are imported.
			for _, node := range nodeNames(t) {
				eventually(t, "node "+node+" listing the images "+line+" builds", 2*time.Minute, func() error {
					var have []string
					// jsonpath prints each image's names as a JSON list.
					names := strings.FieldsFunc(kubectl(t, "get", "node", node, "-o", "jsonpath={.status.images[*].names}"),
						func(r rune) bool { return strings.ContainsRune(`[]", `, r) })
					for _, name := range names {
						if strings.HasPrefix(name, "docker.io/kubelab/") && !strings.Contains(name, "@") {
							have = append(have, name)
						}
					}
					slices.Sort(have)
					if !slices.Equal(slices.Compact(have), want) {
						return fmt.Errorf("%s builds %q; the node has %q", line, want, have)
					}
					return nil
				})
			}
		}},
		{"make deploy-minikube", func(t *testing.T, line string) {
			out := learner(t, line)
			mustPrint(t, line, out, `roll out complete: 1 new pods have been updated`, `deployment.apps/frontend annotated`,
				`deployment "imageproc" successfully rolled out`, `deployment "frontend" successfully rolled out`)
		}},
		{"kubectl -n kubelab get all -l app.kubernetes.io/part-of=kubelab", func(t *testing.T, line string) {
			out := learner(t, line)
			mustPrint(t, line, out, `pod/frontend-\S+ +1/1 +Running`, `pod/imageproc-\S+ +1/1 +Running`,
				`pod/postgres-0 +1/1 +Running`, `service/frontend +NodePort`, `deployment.apps/frontend`,
				`statefulset.apps/postgres`, `horizontalpodautoscaler.autoscaling/frontend`)
		}},
		{"minikube service -n kubelab frontend --url", func(t *testing.T, _ string) {
			// What it prints: http://$(minikube ip) and the NodePort.
			if p := kubectl(t, "-n", nsOf(t), "get", "svc", "frontend", "-o", "jsonpath={.spec.ports[0].nodePort}"); p != "30080" {
				t.Fatalf("frontend NodePort %q, want 30080", p)
			}
			eventually(t, "the NodePort", time.Minute, func() error {
				b, err := httpGet(nodePort + "/")
				if err == nil && !strings.Contains(string(b), "kubelab") {
					err = fmt.Errorf("the gallery page does not say kubelab")
				}
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
		}},
		{"kubectl -n kubelab create -f manifests/worker/job.yaml", func(t *testing.T, line string) {
			out := learner(t, line)
			m := regexp.MustCompile(`job\.batch/(worker-[a-z0-9]+) created`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("%s printed %q, want job.batch/worker-… created", line, out)
			}
			if _, err := exec.CommandContext(t.Context(), "kubectl", "-n", nsOf(t), "wait", "job/"+m[1],
				"--for=condition=Complete", "--timeout=180s").CombinedOutput(); err != nil {
				diagnose(t, "app.kubernetes.io/name=worker")
				t.Fatalf("job %s did not complete", m[1])
			}
		}},
		{"make demo-scale", func(t *testing.T, line string) {
			lg = startLoad(t, nodePort, rate, 10*time.Minute, "--path", "/api/v1/images")
			time.Sleep(5 * time.Second)
			out := learner(t, line)
			mustPrint(t, line, out, `an HPA owns imageproc's replica count \(floor 2\)`,
				`deployment.apps/imageproc scaled`, `deployment.apps/imageproc condition met`,
				`horizontalpodautoscaler.autoscaling/imageproc patched`)
			if n := replicas(t, "imageproc"); n != 5 && n != 2 {
				// The HPA keeps 5 for its stabilization window, then goes to 2.
				t.Errorf("imageproc at %d replicas after demo-scale", n)
			}
		}},
		{"make demo-rollout NEW_TAG=0.2.0", func(t *testing.T, line string) {
			out := learner(t, line)
			mustPrint(t, line, out, `deployment "frontend" successfully rolled out`, `set image kubelab/frontend:0.2.0`)
			// Right after the rollout, kube-proxy may still route a request
			// or two to an old pod finishing its graceful shutdown.
			eventually(t, "the frontend answering as 0.2.0 after demo-rollout", 30*time.Second, func() error {
				if v := podInfo(t, nodePort).Version; v != "0.2.0" {
					return fmt.Errorf("a frontend says version %q", v)
				}
				return nil
			})
		}},
		{"make demo-rollback", func(t *testing.T, line string) {
			out := learner(t, line)
			// The manifests carry no change-cause: deploy-minikube recorded
			// the first revision's, and rollout undo brings it back with its
			// template, under the newest revision number.
			mustPrint(t, line, out, `deployment "frontend" successfully rolled out`,
				`(?m)^2 +set image kubelab/frontend:0\.2\.0$`, `(?m)^3 +make deploy-minikube: kubelab/frontend:0\.1\.0$`)
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
			autoscales(t, nodePort)
		}},
		{"make undeploy", func(t *testing.T, line string) {
			learner(t, line)
			if out, err := runKubectl("get", "namespace", nsOf(t)); err == nil {
				t.Errorf("make undeploy left the namespace: %s", out)
			}
		}},
	}

	cmds := readmeCommands(t)
	if len(cmds) != len(steps) {
		t.Errorf("the README has %d commands %q; this test knows %d", len(cmds), cmds, len(steps))
	}
	for i, line := range cmds {
		if i >= len(steps) || !strings.HasPrefix(line, steps[i].prefix) {
			t.Fatalf("README command %d is %q: this test does not know what it should print", i+1, line)
		}
		steps[i].run(t, line)
		if t.Failed() {
			return
		}
	}
}

// autoscales loads the gallery page, which costs the frontend CPU (70% of
// a 50m request per pod is soon passed), until the HPA adds frontend pods,
// and then waits for it to remove them.
func autoscales(t *testing.T, nodePort string) {
	t.Helper()
	floor := replicas(t, "frontend")
	heavy := startLoad(t, nodePort, 250, 5*time.Minute, "--path", "/")
	start := time.Now()
	eventually(t, "the HPA to add frontend pods", 4*time.Minute, func() error {
		if n := replicas(t, "frontend"); n <= floor {
			return fmt.Errorf("frontend at %d replicas; hpa: %s", n, kubectl(t, "-n", nsOf(t), "get", "hpa", "frontend", "--no-headers"))
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
}
