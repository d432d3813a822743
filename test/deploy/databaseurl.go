package deploy

import (
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// CheckDatabaseURL: every container that runs imageproc serve or migrate
// from a kubelab imageproc image sets DATABASE_URL. The images are built
// with -tags nosqlite, without the embedded store `make run` uses, so
// without it imageproc stops at start with a config error (exit 2), and
// the pod crash-loops. Only env counts: envFrom could hide it in a
// ConfigMap, where a password does not belong.
func CheckDatabaseURL(objs []Object) []string {
	var bad []string
	for _, p := range Pods(objs) {
		for _, c := range containers(p.Spec) {
			cmd, ok := imageprocCommand(c)
			if !ok || (cmd != "serve" && cmd != "migrate") {
				continue
			}
			if !setsEnv(c, "DATABASE_URL") {
				bad = append(bad, fmt.Sprintf("%s: container %s runs imageproc %s from %s without DATABASE_URL: "+
					"the images have no embedded store (built with -tags nosqlite), so it would exit at start",
					p.Owner, c.Name, cmd, c.Image))
			}
		}
	}
	return bad
}

// imageprocCommand tells whether c runs a kubelab imageproc image, and
// which subcommand: the first word after the entrypoint /app, from command
// (replacing the entrypoint) and args, serve when there is none.
func imageprocCommand(c corev1.Container) (string, bool) {
	ref, _, _ := strings.Cut(c.Image, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	// kubelab/imageproc as the manifests name it (docker.io/ when
	// loaded), kubelab-imageproc as make images tags it (the e2e overlays).
	if ref != "kubelab/imageproc" && !strings.HasSuffix(ref, "/kubelab/imageproc") && path.Base(ref) != "kubelab-imageproc" {
		return "", false
	}
	var words []string
	if len(c.Command) > 0 {
		words = c.Command[1:]
	}
	words = append(words, c.Args...)
	if len(words) == 0 {
		return "serve", true
	}
	return words[0], true
}

// setsEnv tells whether c's env gives name a value, literal or from a
// source.
func setsEnv(c corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value != "" || e.ValueFrom != nil
		}
	}
	return false
}
