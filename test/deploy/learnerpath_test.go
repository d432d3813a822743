package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// needMake skips without make, except under CI=true, where a missing tool
// is a failure.
func needMake(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("make is needed to read the Makefile's targets: %v", err)
		}
		t.Skipf("make not found (%v): the Makefile's targets cannot be read", err)
	}
}

// minikubePath is what the README has a minikube user run: the minikube
// overlay and the worker Jobs created from manifests/worker.
func minikubePath(t *testing.T) []Object {
	t.Helper()
	return load(t, build{dir: filepath.Join(root, "kustomize/overlays/minikube"), extra: jobs})
}

// demoImages are the images the demo targets move Deployments to.
func demoImages(t *testing.T, objs []Object) []ImageUse {
	t.Helper()
	var uses []ImageUse
	for _, target := range []string{"demo-scale", "demo-rollout", "demo-rollback"} {
		out, err := MakeDryRun(root, "", target)
		if err != nil {
			t.Fatal(err)
		}
		uses = append(uses, SetImageUses(SetImages(out), objs, "make "+target)...)
	}
	if len(uses) == 0 {
		t.Fatal("no demo target sets an image: demo-rollout's `kubectl set image` was not found")
	}
	return uses
}

func minikubeBuilds(t *testing.T, makefile string) []ImageBuild {
	t.Helper()
	out, err := MakeDryRun(root, makefile, "images-minikube")
	if err != nil {
		t.Fatal(err)
	}
	builds, problems := ImageBuilds(out)
	for _, p := range problems {
		t.Errorf("make images-minikube %s", p)
	}
	if len(builds) == 0 {
		t.Fatalf("make -n images-minikube shows no image build:\n%s", out)
	}
	return builds
}

// TestMinikubeImagesAreBuilt: every image the minikube path runs (the
// overlay, the Jobs, demo-rollout's NEW_TAG) is one `make images-minikube`
// builds, read from `make -n images-minikube`, with VERSION set to its tag.
// postgres is exempt: its pull policy lets minikube pull the official image.
func TestMinikubeImagesAreBuilt(t *testing.T) {
	needMake(t)
	objs := minikubePath(t)
	uses := append(ImageUses(objs), demoImages(t, objs)...)
	builds := minikubeBuilds(t, "")
	for _, u := range uses {
		if PullableFromDockerHub(u) {
			t.Logf("exempt: %s runs %s, which minikube pulls from Docker Hub (imagePullPolicy %s)", u.Where, u.Image, u.Policy)
		}
	}
	for _, p := range CheckImagesBuilt(uses, builds) {
		t.Error(p)
	}
}

// TestImagesBuiltCatchesBreaks breaks the Makefile, the overlay, a Job and
// the exemption one at a time and expects CheckImagesBuilt to say so.
func TestImagesBuiltCatchesBreaks(t *testing.T) {
	needMake(t)
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	// editedMakefile writes the Makefile with one edit to a scratch file.
	editedMakefile := func(t *testing.T, old, new string) string {
		t.Helper()
		if !strings.Contains(string(makefile), old) {
			t.Fatalf("the Makefile no longer contains %q: update this break", old)
		}
		path := filepath.Join(t.TempDir(), "Makefile")
		if err := os.WriteFile(path, []byte(strings.Replace(string(makefile), old, new, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name, want string
		// breakIt returns the Makefile to read ("" for the real one) after
		// breaking objs or not.
		breakIt func(t *testing.T, objs []Object) string
	}{
		{"NEW_TAG no longer built", "kubelab/frontend:0.2.0", func(t *testing.T, _ []Object) string {
			return editedMakefile(t, " frontend:$(NEW_TAG)", "")
		}},
		{"the overlay runs a tag nobody builds", "kubelab/frontend:0.3.0", func(_ *testing.T, o []Object) string {
			d, _ := find[*appsv1.Deployment](o, "frontend")
			d.Spec.Template.Spec.Containers[0].Image = "kubelab/frontend:0.3.0"
			return ""
		}},
		{"a Job runs a tag nobody builds", "kubelab/worker:0.1.1", func(_ *testing.T, o []Object) string {
			j, _ := find[*batchv1.Job](o, "worker-")
			j.Spec.Template.Spec.Containers[0].Image = "kubelab/worker:0.1.1"
			return ""
		}},
		// With Never, minikube would not pull postgres either.
		{"postgres never pulled", "postgres:15.10", func(_ *testing.T, o []Object) string {
			s, _ := find[*appsv1.StatefulSet](o, "postgres")
			s.Spec.Template.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
			return ""
		}},
		{"VERSION is not the tag", "kubelab/frontend:0.2.0 is built with VERSION=0.1.0", func(t *testing.T, _ []Object) string {
			return editedMakefile(t, "VERSION=$(lastword $(subst :, ,$(1)))", "VERSION=0.1.0")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := minikubePath(t)
			if problems := CheckImagesBuilt(append(ImageUses(objs), demoImages(t, objs)...), minikubeBuilds(t, "")); len(problems) != 0 {
				t.Fatalf("the intact path already fails: %v", problems)
			}
			makefile := tt.breakIt(t, objs)
			problems := CheckImagesBuilt(append(ImageUses(objs), demoImages(t, objs)...), minikubeBuilds(t, makefile))
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Fatalf("the check did not catch the break; it said %q", problems)
			}
		})
	}
}

// TestImageBuildsRefusesShellLoops: a build whose tag only the shell
// expands (`for s in ...; do ... -t kubelab/$s:0.1.0`) cannot be read
// from `make -n`, so it is reported rather than silently missed.
func TestImageBuildsRefusesShellLoops(t *testing.T) {
	loop := "for s in imageproc frontend; do minikube image build --all -f docker/Dockerfile --build-opt=build-arg=VERSION=0.1.0 -t kubelab/$s:0.1.0 . ; done\n"
	builds, problems := ImageBuilds(loop)
	if len(builds) != 0 || len(problems) != 1 || !strings.Contains(problems[0], "kubelab/$s:0.1.0") {
		t.Fatalf("builds %v, problems %q", builds, problems)
	}
	one := "minikube image build --all -f docker/Dockerfile --build-opt=target=image --build-opt=build-arg=SERVICE=frontend --build-opt=build-arg=VERSION=0.2.0 -t kubelab/frontend:0.2.0 .\n"
	if builds, problems := ImageBuilds(one); len(problems) != 0 || !slices.Equal(builds, []ImageBuild{{"kubelab/frontend:0.2.0", "0.2.0"}}) {
		t.Fatalf("builds %v, problems %q", builds, problems)
	}
	// Without --all minikube builds on its primary node only.
	primaryOnly := strings.Replace(one, " --all", "", 1)
	if _, problems := ImageBuilds(primaryOnly); len(problems) != 1 || !strings.Contains(problems[0], "without --all") {
		t.Fatalf("a build for the primary node only: problems %q, want one naming --all", problems)
	}
}

func TestNormalizeImage(t *testing.T) {
	for ref, want := range map[string]string{
		"postgres:15.10":                     "docker.io/library/postgres:15.10",
		"kubelab/frontend:0.1.0":             "docker.io/kubelab/frontend:0.1.0",
		"docker.io/kubelab/frontend:0.1.0":   "docker.io/kubelab/frontend:0.1.0",
		"localhost/kubelab-frontend:0.1.0":   "localhost/kubelab-frontend:0.1.0",
		"registry.example.com/kubelab/x:1.0": "registry.example.com/kubelab/x:1.0",
		"localhost:5000/kubelab/frontend:1":  "localhost:5000/kubelab/frontend:1",
	} {
		if got := NormalizeImage(ref); got != want {
			t.Errorf("NormalizeImage(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestParseNginxSize(t *testing.T) {
	for v, want := range map[string]int64{"0": 0, "1024": 1024, "512k": 512 << 10, "25m": 25 << 20, "50M": 50 << 20, "1g": 1 << 30, "2G": 2 << 30} {
		if got, err := ParseNginxSize(v); err != nil || got != want {
			t.Errorf("ParseNginxSize(%q) = %d, %v; want %d", v, got, err, want)
		}
	}
	for _, v := range []string{"", "m", "50MiB", "50mb", "-1m", "+5m", "1t", " 5m"} {
		if n, err := ParseNginxSize(v); err == nil {
			t.Errorf("ParseNginxSize(%q) = %d, want an error", v, n)
		}
	}
}

// selectorObjs is what a selector in the docs or the tests may select:
// the base with the Jobs, the minikube overlay, and the multinode one
// (lesson 21: the node canary DaemonSet besides).
func selectorObjs(t *testing.T) []Object {
	t.Helper()
	objs := load(t, builds(t)[0])
	for _, o := range []string{"minikube", "minikube-multinode"} {
		objs = append(objs, load(t, build{dir: filepath.Join(root, "kustomize/overlays", o)})...)
	}
	return objs
}

// TestSelectorsInDocsAndTestsMatchPods: every `-l` selector the README,
// docs, Makefile, manifest comments and e2e tests use selects a pod of
// the base or a minikube overlay, so the command (or a failed test's
// diagnostics) shows something.
func TestSelectorsInDocsAndTestsMatchPods(t *testing.T) {
	uses, err := SelectorUses(root)
	if err != nil {
		t.Fatal(err)
	}
	objs := selectorObjs(t)
	for _, u := range uses {
		if u.Computed {
			t.Logf("%s: %s is built at run time, not checked", u.Where, u.Selector)
		}
	}
	for _, p := range CheckSelectorUses(objs, uses) {
		t.Error(p)
	}
	// The scanner must see the helpers, or the check above proves nothing.
	for _, want := range []string{
		"app.kubernetes.io/part-of=kubelab",              // diagnose(t, ...) in eventually and makeTarget
		"app.kubernetes.io/name in (imageproc,postgres)", // deletePods(t, sel): "-l", sel in a slice literal
		"app.kubernetes.io/name=postgres",                // rollout(t, kind, name, sel) -> diagnose
		"app.kubernetes.io/name=imageproc",               // the Makefile's demo-scale
	} {
		if !slices.ContainsFunc(uses, func(u SelectorUse) bool { return u.Selector == want }) {
			t.Errorf("the scanner missed the selector %q", want)
		}
	}
}

// TestSelectorUsesCatchBreaks: a selector that matches no pod, or does not
// parse, is reported; and one on the part-of label stops matching when the
// label no longer reaches the pod templates.
func TestSelectorUsesCatchBreaks(t *testing.T) {
	uses, err := SelectorUses(root)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, want string
		breakIt    func(objs []Object, uses []SelectorUse) []SelectorUse
	}{
		{"part-of not on pod templates", "-l app.kubernetes.io/part-of=kubelab matches no pod", func(o []Object, u []SelectorUse) []SelectorUse {
			for _, p := range Pods(o) {
				delete(p.Meta.Labels, "app.kubernetes.io/part-of")
			}
			return u
		}},
		{"a misspelt selector", "README.md:1: -l app.kubernetes.io/name=fronted matches no pod", func(_ []Object, u []SelectorUse) []SelectorUse {
			return append(u, SelectorUse{Where: "README.md:1", Selector: "app.kubernetes.io/name=fronted"})
		}},
		{"EndpointSlices of a Service that is not there", "-l kubernetes.io/service-name=fronted matches no pod", func(_ []Object, u []SelectorUse) []SelectorUse {
			return append(u, SelectorUse{Where: "docs/x.md:1", Selector: "kubernetes.io/service-name=fronted"})
		}},
		{"not a selector", "is not a valid selector", func(_ []Object, u []SelectorUse) []SelectorUse {
			return append(u, SelectorUse{Where: "Makefile:1", Selector: "app.kubernetes.io/name in imageproc"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := selectorObjs(t)
			if problems := CheckSelectorUses(objs, uses); len(problems) != 0 {
				t.Fatalf("the intact repository already fails: %v", problems)
			}
			problems := CheckSelectorUses(objs, tt.breakIt(objs, slices.Clone(uses)))
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Fatalf("the check did not catch the break; it said %q", problems)
			}
		})
	}
}

// TestSelectorScanner runs the scanner on a small file of each kind: the
// text forms kubectl accepts, and helpers found through any depth of calls.
func TestSelectorScanner(t *testing.T) {
	dir := t.TempDir()
	text := "Run `kubectl get pods -l app=a -w` or kubectl logs --selector='app in (b,c)'\n" +
		"\tkubectl -n kubelab get pods --selector=app=d\n" +
		"kubectl -n kube-system get pods -l k8s-app=kube-dns\n" +
		"gofmt -l services\n" +
		"$(KUBECTL) get pods -l app=$(APP)\n"
	code := `package e2e
func kubectl(args ...string) {}
func show(sels ...string) { for _, s := range sels { kubectl("get", "pods", "-l", s) } }
func wait(kind, sel string) { show(sel) }
func waitAll(sel string) { wait("deployment", sel) }
func use(name string) {
	waitAll("app=e")
	show("app=f", "app=g")
	wait("statefulset", "app="+name)
	_ = []string{"-l", "app=h"}
}
`
	if err := os.WriteFile(filepath.Join(dir, "doc.md"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x_test.go"), []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	textUses, err := TextSelectorUses(filepath.Join(dir, "doc.md"), "doc.md")
	if err != nil {
		t.Fatal(err)
	}
	goUses, err := GoSelectorUses(dir, dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range append(textUses, goUses...) {
		s := u.Where + " " + u.Selector
		if u.Computed {
			s += " (computed)"
		}
		got = append(got, s)
	}
	want := []string{
		"doc.md:1 app=a", "doc.md:1 app in (b,c)", "doc.md:2 app=d", "doc.md:5 app=$(APP) (computed)",
		"x_test.go:7 app=e", "x_test.go:8 app=f", "x_test.go:8 app=g", `x_test.go:9 "app="+name (computed)`, "x_test.go:10 app=h",
	}
	if !slices.Equal(got, want) {
		t.Errorf("found\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
