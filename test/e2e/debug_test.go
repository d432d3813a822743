//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// debugImage is the image the README's "A shell next to a distroless
// container" names; cluster-up imports it under this name, as the test
// cluster pulls nothing.
const debugImage = "busybox:1.36"

// debugScript is what a learner would type in the debug shell, each
// answer under a heading the test finds it by.
const debugScript = `echo '== id'; id -u; id -g
echo '== ps'; ps
echo '== title'; cat /proc/1/root/etc/kubelab/config/title; echo
echo '== info'; wget -qO- http://localhost:8080/api/v1/info; echo
echo '== secret in environ'; tr '\000' '\n' </proc/1/environ | grep -c '^SESSION_KEY='`

// TestDebugContainerBesideDistroless follows the README: the frontend's
// image has no shell, so kubectl exec fails; kubectl debug without a
// profile is refused by the namespace's Pod Security "restricted"; with
// --profile=restricted the ephemeral container is admitted, runs as the
// pod's user, sees the frontend as PID 1, reads its filesystem (the
// mounted ConfigMap) through /proc/1/root and its environment, Secret
// included, through /proc/1/environ, and reaches it on localhost.
func TestDebugContainerBesideDistroless(t *testing.T) {
	share(t, suiteNS)
	deployOverlay(t)
	pod := runningFrontendPod(t)
	// An ephemeral container cannot be removed, only its pod: replace the
	// pod, so later tests meet the frontend as deployed.
	t.Cleanup(func() {
		for _, args := range [][]string{
			{"-n", nsOf(t), "delete", "pod", pod, "--wait=true", "--timeout=180s"},
			{"-n", nsOf(t), "rollout", "status", "deployment/frontend", "--timeout=240s"},
		} {
			if out, err := runKubectl(args...); err != nil {
				t.Logf("cleanup: kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})

	out, err := runKubectl("-n", nsOf(t), "exec", pod, "-c", "frontend", "--", "sh", "-c", "true")
	if err == nil || !strings.Contains(out, "not found") {
		t.Errorf("kubectl exec %s -- sh: want a failure naming the missing shell, got err=%v:\n%s", pod, err, out)
	}

	// v1.33's default profile (legacy) sets no securityContext, and Pod
	// Security checks ephemeral containers like any other.
	out, err = runKubectl("-n", nsOf(t), "debug", pod, "--image="+debugImage, "--target=frontend", "-c", "refused", "--", "true")
	if err == nil || !strings.Contains(out, `violates PodSecurity "restricted:latest"`) {
		t.Errorf("kubectl debug without --profile=restricted: want a Pod Security refusal, got err=%v:\n%s", err, out)
	}

	// The README's command, with the shell's input as arguments instead
	// of a terminal; its output is the container's log.
	debugger := fmt.Sprintf("debugger-%d", time.Now().Unix())
	kubectl(t, "-n", nsOf(t), "debug", "pod/"+pod, "--image="+debugImage, "--target=frontend", "--profile=restricted",
		"-c", debugger, "--", "sh", "-c", debugScript)
	eventually(t, "the debug container to run to its end", 2*time.Minute, func() error {
		state := kubectl(t, "-n", nsOf(t), "get", "pod", pod, "-o",
			`jsonpath={.status.ephemeralContainerStatuses[?(@.name=="`+debugger+`")].state}`)
		if !strings.Contains(state, `"terminated"`) {
			return fmt.Errorf("%s is %s", debugger, state)
		}
		return nil
	})
	logs := kubectl(t, "-n", nsOf(t), "logs", pod, "-c", debugger)
	t.Logf("the debug container's output:\n%s", logs)
	answers := sections(logs)

	// The pod's securityContext (runAsUser, runAsGroup) covers ephemeral
	// containers too: the same user and group as the frontend, which is
	// what lets it look into the frontend's process without a capability.
	if got := strings.Fields(answers["id"]); !slices.Equal(got, []string{"65532", "65532"}) {
		t.Errorf("the debug container runs as uid, gid %q, want the pod's 65532 65532", got)
	}
	if !hasPID1(answers["ps"], "/app") {
		t.Errorf("ps in the debug container does not show the frontend's /app as PID 1 (--target shares its process namespace):\n%s", answers["ps"])
	}
	want := kubectl(t, "-n", nsOf(t), "get", "configmap", "frontend-live", "-o", "jsonpath={.data.title}")
	if got := strings.TrimSpace(answers["title"]); got != strings.TrimSpace(want) {
		t.Errorf("/proc/1/root/etc/kubelab/config/title reads %q, want the ConfigMap's title %q", got, want)
	}
	// Counted, not printed: the test's log shows the script's output.
	if got := strings.TrimSpace(answers["secret in environ"]); got != "1" {
		t.Errorf("/proc/1/environ shows SESSION_KEY (from the frontend Secret) %q times, want 1", got)
	}
	var info struct {
		Pod struct{ Name string } `json:"pod"`
	}
	if err := json.Unmarshal([]byte(answers["info"]), &info); err != nil || info.Pod.Name != pod {
		t.Errorf("localhost:8080/api/v1/info from the debug container: pod %q (%v), want %s, the pod it shares a network with", info.Pod.Name, err, pod)
	}
}

// runningFrontendPod names a frontend pod that runs and is not being
// deleted (an earlier test's pod may still be terminating).
func runningFrontendPod(t *testing.T) string {
	t.Helper()
	out := kubectl(t, "-n", nsOf(t), "get", "pods", "-l", "app.kubernetes.io/name=frontend", "--field-selector=status.phase=Running",
		"-o", `jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{"\n"}{end}`)
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 1 {
			return f[0]
		}
	}
	t.Fatalf("no running frontend pod:\n%s", out)
	return ""
}

// sections splits the debug script's output at its "== name" headings.
func sections(out string) map[string]string {
	m := map[string]string{}
	var name string
	for _, line := range strings.Split(out, "\n") {
		if h, ok := strings.CutPrefix(line, "== "); ok {
			name = h
			continue
		}
		if name != "" {
			m[name] += line + "\n"
		}
	}
	return m
}

// hasPID1 says whether a ps listing shows cmd as process 1 (busybox ps:
// PID, USER, maybe TIME, then the command line).
func hasPID1(ps, cmd string) bool {
	for _, line := range strings.Split(ps, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "1" && slices.Contains(f[2:], cmd) {
			return true
		}
	}
	return false
}
