package deploy

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The learner's path on minikube is `make images-minikube`, then the
// minikube overlay, the worker Jobs and the demo targets. The overlay sets
// imagePullPolicy Never (there is no registry to pull kubelab's images
// from), so a pod whose image that target did not build never starts:
// ErrImageNeverPull. These functions read what the Makefile builds and
// what the path runs, from the Makefile itself.

// MakeDryRun returns the commands `make target` would run, without running
// any (make -n), in the repository at root. makefile, when not empty,
// replaces root's Makefile.
func MakeDryRun(root, makefile, target string) (string, error) {
	args := []string{"-n", "--no-print-directory", "-C", root}
	if makefile != "" {
		args = append(args, "-f", makefile)
	}
	cmd := exec.Command("make", append(args, target)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("make -n %s: %w\n%s", target, err, stderr.Bytes())
	}
	return string(out), nil
}

// ImageBuild is one image a dry run builds, and the VERSION stamped into it.
type ImageBuild struct {
	Ref, Version string
}

var buildVersion = regexp.MustCompile(`build-arg[= ]VERSION=(\S+)`)

// ImageBuilds reads the image builds (`... build ... -t ref`) of a dry
// run. A reference the dry run leaves to the shell (a loop variable) is a
// problem: nobody could tell what it builds without running it. So is a
// `minikube image build` for one node only. (The test cluster imports
// every image into every node, so only this check stands for --all.)
func ImageBuilds(dryRun string) (builds []ImageBuild, problems []string) {
	for _, line := range strings.Split(strings.ReplaceAll(dryRun, "\\\n", " "), "\n") {
		f := strings.Fields(line)
		if !strings.Contains(line, " build ") {
			continue
		}
		if strings.Contains(line, "minikube image build ") && !slices.Contains(f, "--all") {
			problems = append(problems, fmt.Sprintf("builds without --all: minikube builds on the primary node only, and on a minikube of several nodes (lesson 21) a pod elsewhere never starts (ErrImageNeverPull): %s", strings.TrimSpace(line)))
		}
		version := ""
		if m := buildVersion.FindStringSubmatch(line); m != nil {
			version = m[1]
		}
		for i := 0; i+1 < len(f); i++ {
			if f[i] != "-t" && f[i] != "--tag" {
				continue
			}
			ref := f[i+1]
			if strings.ContainsAny(ref, "$`") || strings.ContainsAny(version, "$`") {
				problems = append(problems, fmt.Sprintf("builds %s with VERSION=%s, which only the shell knows: write one command per image so `make -n` shows what is built", ref, version))
				continue
			}
			builds = append(builds, ImageBuild{Ref: ref, Version: version})
		}
	}
	return builds, problems
}

// SetImage is an image a dry run's `kubectl set image` moves a container to.
type SetImage struct {
	Resource, Container, Image string
}

// SetImages reads the `kubectl set image <resource> <container>=<image>...`
// commands of a dry run.
func SetImages(dryRun string) []SetImage {
	var out []SetImage
	for _, line := range strings.Split(dryRun, "\n") {
		f := strings.Fields(line)
		for i := 0; i+2 < len(f); i++ {
			if f[i] != "set" || f[i+1] != "image" {
				continue
			}
			var resource string
			for _, arg := range f[i+2:] {
				switch container, image, ok := strings.Cut(arg, "="); {
				case strings.HasPrefix(arg, "-"):
				case !ok && resource == "":
					resource = arg
				case ok && resource != "":
					out = append(out, SetImage{Resource: resource, Container: container, Image: image})
				}
			}
		}
	}
	return out
}

// ImageUse is an image a pod runs, where, and the pull policy the kubelet
// would run it with.
type ImageUse struct {
	Image, Where string
	Policy       corev1.PullPolicy
}

// ImageUses lists every container image of objs, with its effective pull
// policy (the API server's default where the manifest sets none).
func ImageUses(objs []Object) []ImageUse {
	var out []ImageUse
	for _, p := range Pods(objs) {
		for _, c := range containers(p.Spec) {
			out = append(out, ImageUse{Image: c.Image, Where: p.Owner.String() + " container " + c.Name, Policy: pullPolicy(c)})
		}
	}
	return out
}

// SetImageUses turns a demo's set-image commands into uses, each with the
// pull policy of the container it replaces in objs.
func SetImageUses(sets []SetImage, objs []Object, where string) []ImageUse {
	var out []ImageUse
	for _, s := range sets {
		u := ImageUse{Image: s.Image, Where: fmt.Sprintf("%s: set image %s %s", where, s.Resource, s.Container)}
		for _, p := range Pods(objs) {
			if !strings.EqualFold(p.Owner.Kind+"/"+p.Owner.Name, s.Resource) {
				continue
			}
			for _, c := range p.Spec.Containers {
				if c.Name == s.Container {
					c.Image = s.Image
					u.Policy = pullPolicy(c)
				}
			}
		}
		out = append(out, u)
	}
	return out
}

// pullPolicy is imagePullPolicy as the API server defaults it.
func pullPolicy(c corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	name := c.Image[strings.LastIndex(c.Image, "/")+1:]
	if _, tag, ok := strings.Cut(name, ":"); (!ok || tag == "latest") && !strings.Contains(c.Image, "@") {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// CheckImagesBuilt: every image the path uses is one the Makefile builds,
// and each build's VERSION is its tag, so the pages show which version
// answers. An official Docker Hub image the kubelet may pull (postgres:
// pull policy not Never) is exempt: minikube pulls it itself.
func CheckImagesBuilt(uses []ImageUse, builds []ImageBuild) []string {
	built := map[string]bool{}
	var bad []string
	for _, b := range builds {
		built[NormalizeImage(b.Ref)] = true
		if _, tag, _ := strings.Cut(b.Ref[strings.LastIndex(b.Ref, "/")+1:], ":"); b.Version != tag {
			bad = append(bad, fmt.Sprintf("%s is built with VERSION=%s: its pages would not show its own version", b.Ref, b.Version))
		}
	}
	for _, u := range uses {
		if built[NormalizeImage(u.Image)] {
			continue
		}
		if PullableFromDockerHub(u) {
			continue
		}
		bad = append(bad, fmt.Sprintf("%s runs %s (imagePullPolicy %s), which make images-minikube does not build: the pod would never start", u.Where, u.Image, u.Policy))
	}
	return bad
}

// PullableFromDockerHub reports whether the kubelet would fetch u itself:
// an official Docker Hub image (no repository owner, e.g. postgres:15.10)
// with a policy that allows pulling.
func PullableFromDockerHub(u ImageUse) bool {
	return u.Policy != corev1.PullNever && strings.HasPrefix(NormalizeImage(u.Image), "docker.io/library/")
}

// NormalizeImage spells a reference in full, as the container runtime
// does: kubelab/frontend:0.1.0 is docker.io/kubelab/frontend:0.1.0, and
// postgres:15.10 is docker.io/library/postgres:15.10.
func NormalizeImage(ref string) string {
	first, rest, ok := strings.Cut(ref, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return ref // names its registry
	}
	if !ok {
		return "docker.io/library/" + ref
	}
	return "docker.io/" + first + "/" + rest
}
