package main_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/platform/lifecycle"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

// The cluster images are built with -tags nosqlite (make images, the
// Dockerfile, Tilt): no SQLite, about 4 MB less. These tests hold the two
// halves of that promise: the tag really leaves SQLite out, and a binary
// without it refuses to start on the embedded store it does not have.

// deps lists the packages imageproc's binary is built from, with flags.
func deps(t *testing.T, flags ...string) []string {
	t.Helper()
	args := append(append([]string{"list", "-deps"}, flags...), ".")
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out))
}

func TestImageBuildLeavesSQLiteOut(t *testing.T) {
	const sqlite = "modernc.org/sqlite"
	// Without the tag it is there, or this test would pass for nothing.
	if !slices.Contains(deps(t), sqlite) {
		t.Fatalf("imageproc built without tags does not import %s: make run's embedded store is gone", sqlite)
	}
	for _, p := range deps(t, "-tags", "nosqlite") {
		if p == sqlite || strings.HasPrefix(p, "modernc.org/") {
			t.Errorf("imageproc built with -tags nosqlite still imports %s", p)
		}
	}
}

// Without DATABASE_URL, a nosqlite binary stops at once, before serving or
// migrating anything, with a config error that names DATABASE_URL: a
// manifest that forgot it fails loudly instead of running on nothing.
func TestProcessWithoutSQLiteNeedsDatabaseURL(t *testing.T) {
	bin := proctest.Build(t, ".", "-tags", "nosqlite")
	for _, cmd := range []string{"serve", "migrate"} {
		p := proctest.Start(t, "imageproc-nosqlite-"+cmd, bin, []string{cmd},
			"DATABASE_URL=", "DATA_DIR="+t.TempDir(), "GRPC_ADDR="+proctest.FreeAddr(t), "ADMIN_ADDR="+proctest.FreeAddr(t))
		if code := p.Wait(t, 10*time.Second); code != lifecycle.ExitConfig {
			t.Errorf("%s: exit status %d, want %d (a config error); output:\n%s", cmd, code, lifecycle.ExitConfig, p.Log)
		}
		for _, says := range []string{"DATABASE_URL is unset", "no embedded store", "-tags nosqlite"} {
			if !strings.Contains(p.Log.String(), says) {
				t.Errorf("%s: output does not say %q:\n%s", cmd, says, p.Log)
			}
		}
	}
}
