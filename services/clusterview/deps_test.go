package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLinksNoTemplates: a binary that can run a text or HTML template
// keeps every exported method of every type it links (templates call
// methods by name), which with client-go's types in it once doubled this
// one, 31 MB to 61 MB. gRPC brings one in (golang.org/x/net/trace registers HTML
// pages at init), so nothing here may import it, even through platform
// (docs/DESIGN.md, the live view). text/template is not banned:
// envconfig imports it for a Usage function that nothing here calls, and
// the linker only counts a template that can run.
func TestLinksNoTemplates(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, banned := range []string{"html/template", "google.golang.org/grpc", "golang.org/x/net/trace"} {
		if slices.Contains(deps, banned) {
			t.Errorf("clusterview links %s: find who imports it with go list -deps -f '{{.ImportPath}}: {{.Imports}}' .", banned)
		}
	}
}

// TestLinksNoClientGo: client-go's informers alone made this binary
// 31.6 MB; internal/kube does the list and watch it needs in a few
// hundred lines, and it is about 10 MB (docs/DESIGN.md, the live view).
// Neither client-go nor the API types it brings may come back.
func TestLinksNoClientGo(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "k8s.io/") {
			t.Errorf("clusterview links %s: internal/kube is the Kubernetes client here", dep)
		}
	}
}
