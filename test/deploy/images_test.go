package deploy

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The images are built without imageproc's embedded store (-tags nosqlite,
// `make images`): these tests keep them small, and keep every imageproc
// the course starts supplied with a database.

// imageBudget is the most an image's payload may weigh: its binary and the
// files of docker/rootfs, in the MB (10⁶ bytes) podman reports.
const imageBudget = 20_000_000

// TestImagesStayUnder20MB builds every service exactly as `make images`
// does, through its own targets (image-binaries, rootfs: the same flags
// and tags), into a scratch directory, and weighs what the prebuilt image
// copies. A new dependency that fattens a binary fails here, naming it,
// rather than in a pull on a slow link.
func TestImagesStayUnder20MB(t *testing.T) {
	needMake(t)
	dir := t.TempDir()
	bin, rootfs := filepath.Join(dir, "bin"), filepath.Join(dir, "rootfs")
	cmd := exec.Command("make", "-s", "--no-print-directory", "-C", root, "image-binaries", "rootfs", "IMAGE_BIN="+bin, "ROOTFS="+rootfs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image-binaries rootfs: %v\n%s", err, out)
	}
	var base int64
	err := filepath.WalkDir(rootfs, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		base += info.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range makeServices(t) {
		info, err := os.Stat(filepath.Join(bin, svc))
		if err != nil {
			t.Errorf("%s: make image-binaries built no binary: %v", svc, err)
			continue
		}
		size := info.Size() + base
		t.Logf("%-12s %5.1f MB (binary %.1f MB)", svc, mb(size), mb(info.Size()))
		if size > imageBudget {
			t.Errorf("%s: its image carries %.1f MB (binary %.1f MB, rootfs %.1f MB), over the %.0f MB budget",
				svc, mb(size), mb(info.Size()), mb(base), mb(imageBudget))
		}
	}
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// makeVar is the value the Makefile gives name (NAME := value), as
// written: make's own expansion is not needed for the variables read here.
func makeVar(t *testing.T, name string) string {
	t.Helper()
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + `\s*:?=(.*)$`).FindSubmatch(makefile)
	if m == nil || strings.TrimSpace(string(m[1])) == "" {
		t.Fatalf("the Makefile sets no %s", name)
	}
	return strings.TrimSpace(string(m[1]))
}

// makeServices is the Makefile's SERVICES: every service with an image.
func makeServices(t *testing.T) []string { return strings.Fields(makeVar(t, "SERVICES")) }

// imageTags is the -tags make images builds the images' binaries with
// (IMAGE_TAGS in the Makefile).
func imageTags(t *testing.T) string { return makeVar(t, "IMAGE_TAGS") }

// heredoc opens a here-document in a shell line (<<EOF, <<'EOF', <<-"EOF").
var (
	heredoc      = regexp.MustCompile(`<<-?\s*['"]?([A-Za-z_]+)['"]?`)
	docSeparator = regexp.MustCompile(`(?m)^---\s*$`)
	docKind      = regexp.MustCompile(`(?m)^kind:\s*(\w+)\s*$`)
	podKinds     = map[string]bool{"Pod": true, "Deployment": true, "StatefulSet": true, "DaemonSet": true, "Job": true, "CronJob": true}
)

// lessonManifests decodes every object a lesson's shell blocks write in a
// here-document (kubectl create -f - <<'EOF') that runs containers.
func lessonManifests(f mdFile) (objs []Object, problems []string) {
	blocks, _ := mdFences(f.Text)
	for _, b := range blocks {
		if !strings.HasPrefix(b.Info, "sh") {
			continue
		}
		lines := strings.Split(b.Body, "\n")
		for i := 0; i < len(lines); i++ {
			m := heredoc.FindStringSubmatch(lines[i])
			if m == nil {
				continue
			}
			start, end := i+1, i+1
			for end < len(lines) && strings.TrimSpace(lines[end]) != m[1] {
				end++
			}
			i = end
			for _, doc := range docSeparator.Split(strings.Join(lines[start:end], "\n"), -1) {
				if strings.TrimSpace(doc) == "" {
					continue
				}
				// Only what runs containers: a lesson may show a Secret
				// the API server refuses (lesson 10), and it has no pod.
				if m := docKind.FindStringSubmatch(doc); m == nil || !podKinds[m[1]] {
					continue
				}
				o, err := Decode([]byte(doc))
				switch {
				case err != nil:
					problems = append(problems, fmt.Sprintf("%s:%d: %v", f.Path, b.Line+start, err))
				default:
					objs = append(objs, o)
				}
			}
		}
	}
	return objs, problems
}

// lessonDatabaseURLProblems runs CheckDatabaseURL on every lesson's own
// manifests, and counts the imageproc containers it looked at.
func lessonDatabaseURLProblems(files map[string]mdFile) (bad []string, imageprocs int) {
	for _, p := range slices.Sorted(maps.Keys(files)) {
		objs, problems := lessonManifests(files[p])
		bad = append(bad, problems...)
		for _, problem := range CheckDatabaseURL(objs) {
			bad = append(bad, p+": "+problem)
		}
		for _, pod := range Pods(objs) {
			for _, c := range containers(pod.Spec) {
				if _, ok := imageprocCommand(c); ok {
					imageprocs++
				}
			}
		}
	}
	return bad, imageprocs
}

// TestLessonImageprocPodsSetDatabaseURL: an imageproc a lesson starts from
// kubelab's image (lesson 13's imageproc-small) sets DATABASE_URL too, as
// the overlays' do (CheckDatabaseURL in TestEveryBuildPassesEveryCheck).
func TestLessonImageprocPodsSetDatabaseURL(t *testing.T) {
	files := readLessons(t)
	bad, imageprocs := lessonDatabaseURLProblems(files)
	for _, p := range bad {
		t.Error(p)
	}
	// Lesson 13, in English and Japanese: none found means the reading
	// broke, not that all is well.
	if imageprocs < 2 {
		t.Errorf("found %d imageproc containers in the lessons' manifests, want lesson 13's in both languages", imageprocs)
	}

	// The break: lesson 13's pod without its DATABASE_URL.
	const p = lessonsDir + "/en/13-resources.md"
	const env = "        - name: DATABASE_URL\n          valueFrom:\n            secretKeyRef: {name: postgres, key: database-url}\n"
	f := files[p]
	if !strings.Contains(f.Text, env) {
		t.Fatalf("%s no longer sets DATABASE_URL as\n%s", p, env)
	}
	f.Text = strings.Replace(f.Text, env, "", 1)
	bad, _ = lessonDatabaseURLProblems(map[string]mdFile{p: f})
	if want := "Pod/imageproc-small: container imageproc runs imageproc serve"; !slices.ContainsFunc(bad, func(s string) bool { return strings.Contains(s, want) }) {
		t.Errorf("without DATABASE_URL in %s, the check said %q; want %q", p, bad, want)
	}
}

// dockerfileProblems says where docker/Dockerfile would build images other
// than the ones `make images` builds and the test cluster runs: the
// minikube path builds its "image" target (`minikube image build`), which
// compiles inside and cannot run here (no registry for its golang base), so
// this is what keeps it the same: both targets on the one scratch runtime
// stage, the binary compiled with the Makefile's IMAGE_TAGS.
func dockerfileProblems(dockerfile, imageTags string) []string {
	from := map[string]string{} // stage → what it is FROM
	var problems []string
	for _, m := range regexp.MustCompile(`(?m)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?`).FindAllStringSubmatch(dockerfile, -1) {
		from[m[2]] = m[1]
	}
	if from["runtime"] != "scratch" {
		problems = append(problems, fmt.Sprintf("the runtime stage is FROM %q, not scratch", from["runtime"]))
	}
	for _, target := range []string{"image", "prebuilt"} {
		if from[target] != "runtime" {
			problems = append(problems, fmt.Sprintf("target %s is FROM %q, not the runtime stage", target, from[target]))
		}
	}
	builds := regexp.MustCompile(`go build\b[^\n]*`).FindAllString(dockerfile, -1)
	if len(builds) != 1 || !strings.Contains(builds[0], "-tags "+imageTags+" ") {
		problems = append(problems, fmt.Sprintf("want one go build with -tags %s (the Makefile's IMAGE_TAGS), have %q", imageTags, builds))
	}
	if !strings.Contains(dockerfile, "RUN make rootfs ROOTFS=/out/rootfs") || !strings.Contains(dockerfile, "COPY --from=build /out/rootfs/ /") {
		problems = append(problems, "the image target does not carry `make rootfs`'s files, as prebuilt does")
	}
	return problems
}

func TestDockerfileBuildsWhatMakeImagesBuilds(t *testing.T) {
	tags := imageTags(t)
	b, err := os.ReadFile(filepath.Join(root, "docker/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := string(b)
	if p := dockerfileProblems(dockerfile, tags); len(p) > 0 {
		t.Fatalf("docker/Dockerfile:\n%s", strings.Join(p, "\n"))
	}
	breaks := []struct{ name, old, new string }{
		{"a distro base", "FROM scratch AS runtime", "FROM gcr.io/distroless/static-debian12:nonroot AS runtime"},
		{"the image target on its own base", "FROM runtime AS image", "FROM scratch AS image"},
		{"SQLite compiled in", "go build -trimpath -tags " + tags, "go build -trimpath -tags grpcnotrace"},
		{"no rootfs", "COPY --from=build /out/rootfs/ /\n", ""},
	}
	for _, br := range breaks {
		t.Run(br.name, func(t *testing.T) {
			broken := strings.Replace(dockerfile, br.old, br.new, 1)
			if broken == dockerfile {
				t.Fatalf("%q is not in docker/Dockerfile", br.old)
			}
			if len(dockerfileProblems(broken, tags)) == 0 {
				t.Error("not caught")
			}
		})
	}
}
