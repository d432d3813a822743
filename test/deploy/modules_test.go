package deploy

import (
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestModulesAreTidy runs `go mod tidy -diff` in every Go module of the
// repository, outside the workspace, the way a clone without go.work and
// the Dockerfile see it: a test importing a package its module does not
// require, a dependency marked indirect though imported, or a missing
// checksum all show here as the diff tidy would make (docs/DESIGN.md,
// Layout, says why there are these modules and no others).
func TestModulesAreTidy(t *testing.T) {
	var modules []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && slices.Contains([]string{".git", "out", "bin", ".data", "testdata"}, d.Name()) {
			return filepath.SkipDir
		}
		if d.Name() == "go.mod" {
			modules = append(modules, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("looking for go.mod files: %v", err)
	}
	// The application, test/deploy, test/e2e and the test cluster's CoreDNS.
	if len(modules) < 4 {
		t.Fatalf("found %d modules (%v), want at least 4: is the walk looking in the right place?", len(modules), modules)
	}
	for _, dir := range modules {
		rel, _ := filepath.Rel(root, dir)
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command("go", "mod", "tidy", "-diff")
			cmd.Dir = dir
			cmd.Env = append(cmd.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("go mod tidy -diff in %s: %v; run `go mod tidy` there. It would change:\n%s", rel, err, out)
			}
		})
	}
}
