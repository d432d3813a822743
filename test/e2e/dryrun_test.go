//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestServerSideDryRunOfEveryOverlayAndComponent sends every overlay, and
// the base with each component, to the real API server with
// --dry-run=server: schema validation and admission (Pod Security
// "restricted" included) run exactly as for a real apply, and nothing is
// changed.
func TestServerSideDryRunOfEveryOverlayAndComponent(t *testing.T) {
	share(t, learnerNS)
	// Against an empty namespace, as a first deploy: over existing objects
	// a dry run is an update, and overlays legitimately differ in fields
	// that cannot be updated (a StatefulSet's volumeClaimTemplates).
	kubectl(t, "delete", "namespace", nsOf(t), "--ignore-not-found", "--wait=true", "--timeout=180s")
	kubectl(t, "apply", "-f", "../../manifests/namespace.yaml")
	var dirs []string
	overlays, _ := filepath.Glob("../../kustomize/overlays/*")
	dirs = append(dirs, overlays...)
	components, _ := filepath.Glob("../../kustomize/components/*")
	for _, c := range components {
		dir, err := os.MkdirTemp(".", ".dryrun-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		kust := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: kubelab\nresources: [../../../manifests]\ncomponents: [../%s]\n", c)
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o600); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	for _, d := range dirs {
		out, err := exec.CommandContext(t.Context(), "kubectl", "apply", "--dry-run=server", "-k", d).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", d, err, out)
		}
		// Deployments are not pods: Pod Security answers them with a
		// warning (the namespace's warn label), which must not appear.
		if strings.Contains(string(out), "would violate PodSecurity") {
			t.Errorf("%s: Pod Security warnings:\n%s", d, out)
		}
	}
}
