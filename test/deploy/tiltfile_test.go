package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// tilt is what the Tiltfile asked for, recorded by stub builtins: tilt
// itself cannot be installed here, but its configuration language is
// Starlark, which go.starlark.net runs.
type tilt struct {
	local   map[string]map[string]any // local_resource name -> kwargs
	images  map[string]map[string]any // docker_build ref -> kwargs
	k8s     map[string]map[string]any // k8s_resource name -> kwargs
	yamlDir []string                  // kustomize() directories given to k8s_yaml
	order   []string                  // resource names in declaration order
}

// goValue turns Starlark values into plain Go ones.
func goValue(v starlark.Value) any {
	switch v := v.(type) {
	case starlark.String:
		return string(v)
	case starlark.Int:
		n, _ := v.Int64()
		return n
	case starlark.Bool:
		return bool(v)
	case *starlark.List:
		var out []any
		for i := range v.Len() {
			out = append(out, goValue(v.Index(i)))
		}
		return out
	case *starlark.Dict:
		out := map[string]any{}
		for _, kv := range v.Items() {
			out[fmt.Sprint(goValue(kv[0]))] = goValue(kv[1])
		}
		return out
	case *starlarkstruct.Struct:
		out := map[string]any{}
		for _, name := range v.AttrNames() {
			a, _ := v.Attr(name)
			out[name] = goValue(a)
		}
		return out
	}
	return v.String()
}

func strs(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, s := range v {
			out = append(out, fmt.Sprint(s))
		}
		return out
	}
	return nil
}

func runTiltfile(t *testing.T, path string) *tilt {
	t.Helper()
	tl := &tilt{local: map[string]map[string]any{}, images: map[string]map[string]any{}, k8s: map[string]map[string]any{}}
	kwargs := func(args starlark.Tuple, kws []starlark.Tuple, names ...string) map[string]any {
		out := map[string]any{}
		for i, a := range args {
			if i < len(names) {
				out[names[i]] = goValue(a)
			}
		}
		for _, kv := range kws {
			out[string(kv[0].(starlark.String))] = goValue(kv[1])
		}
		return out
	}
	record := func(name string, fn func(map[string]any) starlark.Value, positional ...string) *starlark.Builtin {
		return starlark.NewBuiltin(name, func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kws []starlark.Tuple) (starlark.Value, error) {
			return fn(kwargs(args, kws, positional...)), nil
		})
	}
	step := func(kind string) func(map[string]any) starlark.Value {
		return func(kw map[string]any) starlark.Value {
			d := starlark.StringDict{"kind": starlark.String(kind)}
			for k, v := range kw {
				d[k] = starlark.String(fmt.Sprint(v))
			}
			return starlarkstruct.FromStringDict(starlarkstruct.Default, d)
		}
	}
	predeclared := starlark.StringDict{
		"local_resource": record("local_resource", func(kw map[string]any) starlark.Value {
			name := kw["name"].(string)
			tl.local[name] = kw
			tl.order = append(tl.order, name)
			return starlark.None
		}, "name", "cmd"),
		"docker_build": record("docker_build", func(kw map[string]any) starlark.Value {
			tl.images[kw["ref"].(string)] = kw
			return starlark.None
		}, "ref", "context"),
		"kustomize": record("kustomize", func(kw map[string]any) starlark.Value {
			return starlark.String("kustomize:" + kw["dir"].(string))
		}, "dir"),
		"k8s_yaml": record("k8s_yaml", func(kw map[string]any) starlark.Value {
			dir, ok := strings.CutPrefix(fmt.Sprint(kw["yaml"]), "kustomize:")
			if !ok {
				t.Errorf("k8s_yaml(%v): kubelab deploys through kustomize only", kw["yaml"])
			}
			tl.yamlDir = append(tl.yamlDir, dir)
			return starlark.None
		}, "yaml"),
		"k8s_resource": record("k8s_resource", func(kw map[string]any) starlark.Value {
			name := kw["workload"].(string)
			tl.k8s[name] = kw
			tl.order = append(tl.order, name)
			return starlark.None
		}, "workload"),
		"sync":                record("sync", step("sync"), "local_path", "remote_path"),
		"run":                 record("run", step("run"), "cmd"),
		"link":                record("link", step("link"), "url", "name"),
		"TRIGGER_MODE_AUTO":   starlark.MakeInt(0),
		"TRIGGER_MODE_MANUAL": starlark.MakeInt(1),
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := &syntax.FileOptions{TopLevelControl: true, GlobalReassign: true, Set: true, While: true}
	thread := &starlark.Thread{Name: "Tiltfile", Load: func(*starlark.Thread, string) (starlark.StringDict, error) {
		return nil, fmt.Errorf("the Tiltfile loads no extensions")
	}}
	if _, err := starlark.ExecFileOptions(opts, thread, path, src, predeclared); err != nil {
		t.Fatalf("executing the Tiltfile: %v", err)
	}
	return tl
}

var outputFlag = regexp.MustCompile(`-o (\S+)`)

// tiltProblems runs a Tiltfile and checks everything it names against the
// repository and the dev overlay it deploys.
func tiltProblems(t *testing.T, path string) []string {
	t.Helper()
	var bad []string
	errorf := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	tl := runTiltfile(t, path)
	exists := func(what, p string) {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			errorf("%s: %s does not exist", what, p)
		}
	}
	if len(tl.yamlDir) != 1 || tl.yamlDir[0] != "kustomize/overlays/dev" {
		return append(bad, fmt.Sprintf("k8s_yaml of %v, want the dev overlay", tl.yamlDir))
	}
	dev := load(t, build{dir: filepath.Join(root, tl.yamlDir[0])})

	// Compiled binaries: what each local_resource writes.
	outputs := map[string]string{}
	for name, kw := range tl.local {
		for _, d := range strs(kw["deps"]) {
			exists("local_resource "+name+" deps", d)
		}
		if m := outputFlag.FindStringSubmatch(fmt.Sprint(kw["cmd"])); m != nil {
			outputs[m[1]] = name
		}
	}

	dockerfile, err := os.ReadFile(filepath.Join(root, "docker/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Every kubelab image in the overlay is built by Tilt (or Tilt would
	// try to pull it), and every image Tilt builds is used.
	used := map[string][]Pod{}
	for _, p := range Pods(dev) {
		for _, c := range containers(p.Spec) {
			ref, _, _ := strings.Cut(c.Image, ":")
			used[ref] = append(used[ref], p)
		}
	}
	for ref := range used {
		if strings.HasPrefix(ref, "kubelab/") && tl.images[ref] == nil {
			errorf("the dev overlay uses %s, which the Tiltfile does not build", ref)
		}
	}
	for ref, kw := range tl.images {
		if used[ref] == nil {
			errorf("docker_build %s: no container in the dev overlay uses it", ref)
		}
		exists("docker_build "+ref, fmt.Sprint(kw["dockerfile"]))
		if target := fmt.Sprint(kw["target"]); !regexp.MustCompile(`(?m)^FROM .* AS ` + target + `$`).Match(dockerfile) {
			errorf("docker_build %s: docker/Dockerfile has no target %q", ref, target)
		}
		svc := fmt.Sprint(kw["build_args"].(map[string]any)["SERVICE"])
		exists("docker_build "+ref+" SERVICE", "services/"+svc)
		for _, step := range kw["live_update"].([]any) {
			s := step.(map[string]any)
			if s["kind"] != "sync" {
				continue
			}
			local, remote := fmt.Sprint(s["local_path"]), fmt.Sprint(s["remote_path"])
			if outputs[local] == "" {
				errorf("docker_build %s syncs %s, which no local_resource builds", ref, local)
			}
			if !slices.Contains(strs(kw["only"]), local) {
				errorf("docker_build %s: %s is synced but not in the build context (only=)", ref, local)
			}
			// The destination is a writable mount where the service
			// looks for a reloaded binary.
			for _, p := range used[ref] {
				if p.Owner.Kind != "Deployment" {
					continue
				}
				c := p.Spec.Containers[0]
				if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return strings.HasPrefix(remote, m.MountPath+"/") }) {
					errorf("%s: live update syncs to %s, which is not on a mounted volume (the root filesystem is read-only)", p.Owner, remote)
				}
				if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "DEV_RELOAD_BINARY" && e.Value == remote }) {
					errorf("%s: DEV_RELOAD_BINARY does not point at %s", p.Owner, remote)
				}
			}
		}
	}

	// k8s_resource names workloads of the overlay; dependencies exist and
	// come first; port forwards reach container ports; links use them.
	declared := map[string]int{}
	for i, n := range tl.order {
		declared[n] = i
	}
	for name, kw := range tl.k8s {
		var ports []corev1.ContainerPort
		switch {
		case isObj[*appsv1.Deployment](dev, name), isObj[*appsv1.StatefulSet](dev, name):
			for _, p := range Pods(dev) {
				if p.Owner.Name == name {
					ports = p.Spec.Containers[0].Ports
				}
			}
		case slices.ContainsFunc(dev, func(o Object) bool { return o.Name == name && o.Kind == "CronJob" }):
		default:
			errorf("k8s_resource %q: no such workload in the dev overlay", name)
		}
		for _, dep := range strs(kw["resource_deps"]) {
			if i, ok := declared[dep]; !ok || i > declared[name] {
				errorf("k8s_resource %q depends on %q, which is not declared before it", name, dep)
			}
		}
		var local []string
		for _, pf := range strs(kw["port_forwards"]) {
			l, r, _ := strings.Cut(pf, ":")
			local = append(local, l)
			if !slices.ContainsFunc(ports, func(p corev1.ContainerPort) bool { return fmt.Sprint(p.ContainerPort) == r }) {
				errorf("k8s_resource %q forwards to port %s, which its container does not expose", name, r)
			}
		}
		if links, ok := kw["links"].([]any); ok {
			for _, l := range links {
				u := fmt.Sprint(l.(map[string]any)["url"])
				if !slices.ContainsFunc(local, func(p string) bool {
					return strings.HasPrefix(u, "http://localhost:"+p+"/") || u == "http://localhost:"+p
				}) {
					errorf("k8s_resource %q links %s, which none of its port forwards serves", name, u)
				}
			}
		}
	}
	if declared["postgres"] > declared["imageproc"] || !slices.Contains(strs(tl.k8s["imageproc"]["resource_deps"]), "postgres") {
		errorf("imageproc must depend on postgres")
	}
	return bad
}

func TestTiltfile(t *testing.T) {
	for _, problem := range tiltProblems(t, filepath.Join(root, "Tiltfile")) {
		t.Error(problem)
	}
}

// TestTiltfileChecksCatchBreaks edits the Tiltfile one mistake at a time.
func TestTiltfileChecksCatchBreaks(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(root, "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ from, to, want string }{
		{"port_forwards=['8080:8080']", "port_forwards=['8080:8081']", "does not expose"},
		{"sync(binary, '/dev-bin/' + svc)", "sync(binary, '/app/' + svc)", "not on a mounted volume"},
		{"target='dev'", "target='devel'", "no target"},
		{"k8s_resource(\n    'postgres',", "k8s_resource(\n    'postgresql',", "no such workload"},
		{"only=[binary, 'docker/']", "only=['docker/']", "not in the build context"},
		{"link('http://localhost:8080', 'kubelab UI')", "link('http://localhost:8000', 'kubelab UI')", "none of its port forwards"},
		{"kustomize('kustomize/overlays/dev')", "kustomize('kustomize/overlays/minikube')", "want the dev overlay"},
		{"deps=['services/' + svc,", "deps=['service/' + svc,", "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if !strings.Contains(string(src), tt.from) {
				t.Fatalf("the Tiltfile no longer contains %q", tt.from)
			}
			path := filepath.Join(t.TempDir(), "Tiltfile")
			if err := os.WriteFile(path, []byte(strings.Replace(string(src), tt.from, tt.to, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			problems := tiltProblems(t, path)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Fatalf("not caught; problems: %q", problems)
			}
		})
	}
}

func isObj[T any](objs []Object, name string) bool {
	_, ok := find[T](objs, name)
	return ok
}
