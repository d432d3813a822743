package deploy

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
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

	kubectlLog string // the stand-in kubectl's record of its calls
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

// blob is what Tilt's local() returns: text that str() turns into a
// string, and nothing more (no string methods), as in Tilt.
type blob string

func (b blob) String() string        { return string(b) }
func (b blob) Type() string          { return "blob" }
func (b blob) Freeze()               {}
func (b blob) Truth() starlark.Bool  { return len(b) > 0 }
func (b blob) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: blob") }

// kubeContext is what the stub k8s_context() says Tilt deploys to.
const kubeContext = "minikube"

// standInKubectl writes a kubectl that answers the one question the
// Tiltfile asks, as a cluster with one node of architecture arch would
// ("" for no cluster at all: the connection is refused), and records
// every call in log.
func standInKubectl(t *testing.T, arch string) (dir, log string) {
	t.Helper()
	dir = t.TempDir()
	log = filepath.Join(dir, "calls")
	script := fmt.Sprintf(`#!/bin/sh
echo "kubectl $*" >>'%s'
arch='%s'
if [ -z "$arch" ]; then
  echo 'The connection to the server localhost:8080 was refused - did you specify the right host or port?' >&2
  exit 1
fi
case "$*" in
  "--context %s get nodes -o jsonpath={.items[0].status.nodeInfo.architecture}") printf '%%s' "$arch" ;;
  *) echo "the stand-in cluster answers only: kubectl --context %s get nodes -o jsonpath={.items[0].status.nodeInfo.architecture}" >&2; exit 1 ;;
esac
`, log, arch, kubeContext, kubeContext)
	if err := os.WriteFile(filepath.Join(dir, "kubectl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, log
}

// local is Tilt's local(): it runs the command on this machine (sh -c for
// a string, the program itself for a list) in the Tiltfile's directory,
// the repository (copies of the Tiltfile stand in for the real one), and
// a failing command fails the Tiltfile. go is the real one; kubectl is
// the stand-in before it on PATH, as no cluster runs here.
func local(t *testing.T, kubectlDir string) *starlark.Builtin {
	return starlark.NewBuiltin("local", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kws []starlark.Tuple) (starlark.Value, error) {
		var command, commandBat, stdin starlark.Value
		var quiet, echoOff bool
		var env *starlark.Dict
		var dir string
		if err := starlark.UnpackArgs(b.Name(), args, kws, "command", &command, "quiet?", &quiet, "command_bat?", &commandBat,
			"echo_off?", &echoOff, "env?", &env, "dir?", &dir, "stdin?", &stdin); err != nil {
			return nil, err
		}
		var argv []string
		switch c := goValue(command).(type) {
		case string:
			argv = []string{"sh", "-c", c}
		case []any:
			argv = strs(c)
		}
		if len(argv) == 0 {
			return nil, fmt.Errorf("local: no command in %v", command)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		if !filepath.IsAbs(dir) {
			cmd.Dir = filepath.Join(root, dir)
		}
		cmd.Env = append(os.Environ(), "PATH="+kubectlDir+string(os.PathListSeparator)+os.Getenv("PATH"))
		if env != nil {
			for k, v := range goValue(env).(map[string]any) {
				cmd.Env = append(cmd.Env, k+"="+fmt.Sprint(v))
			}
		}
		if stdin != nil && stdin != starlark.None {
			cmd.Stdin = strings.NewReader(stdin.String())
		}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("command %q failed.\nerror: %w\nstderr: %s", argv, err, stderr.String())
		}
		if !quiet {
			t.Logf("local: %s\n%s", argv, stdout.String())
		}
		return blob(stdout.String()), nil
	})
}

// runTiltfile executes a Tiltfile against a cluster whose node has the
// architecture nodeArch ("": no cluster answers).
func runTiltfile(t *testing.T, path, nodeArch string) *tilt {
	t.Helper()
	tl := &tilt{local: map[string]map[string]any{}, images: map[string]map[string]any{}, k8s: map[string]map[string]any{}}
	kubectlDir, kubectlLog := standInKubectl(t, nodeArch)
	tl.kubectlLog = kubectlLog
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
		"local":               local(t, kubectlDir),
		"k8s_context": starlark.NewBuiltin("k8s_context", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			return starlark.String(kubeContext), nil
		}),
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := &syntax.FileOptions{TopLevelControl: true, GlobalReassign: true, Set: true, While: true}
	thread := &starlark.Thread{
		Name: "Tiltfile",
		Load: func(*starlark.Thread, string) (starlark.StringDict, error) {
			return nil, fmt.Errorf("the Tiltfile loads no extensions")
		},
		Print: func(_ *starlark.Thread, msg string) { t.Log("Tiltfile: " + msg) },
	}
	if _, err := starlark.ExecFileOptions(opts, thread, path, src, predeclared); err != nil {
		t.Fatalf("executing the Tiltfile: %v", err)
	}
	return tl
}

var (
	outputFlag = regexp.MustCompile(`-o (\S+)`)
	goarchVar  = regexp.MustCompile(`\bGOARCH=(\S*)`)
	goBuild    = regexp.MustCompile(`\bgo build .* (\./services/\S+)$`)
	tagsFlag   = regexp.MustCompile(`\s-tags[ =](\S+)`)
)

// goOutput runs the go command in the repository.
func goOutput(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// hostGOARCH is this machine's architecture, as the go command sees it.
var hostGOARCH = sync.OnceValue(func() string {
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		panic(fmt.Sprintf("go env GOARCH: %v", err))
	}
	return strings.TrimSpace(string(out))
})

var (
	sourcesMu sync.Mutex
	sources   = map[string][]string{}
)

// repoSources is what go reports a package of this repository is compiled
// from: the absolute directory of every package of the workspace's own
// modules it imports, directly or not, and the go.mod of each of their
// modules (one: the application is one module). Asked once per package: the break tests reuse the answer.
func repoSources(t *testing.T, pkg string) []string {
	t.Helper()
	sourcesMu.Lock()
	defer sourcesMu.Unlock()
	if s, ok := sources[pkg]; ok {
		return s
	}
	var out []string
	for _, p := range strings.Split(goOutput(t, "list", "-deps", "-f", "{{if and .Module .Module.Main}}{{println .Dir}}{{.Module.GoMod}}{{end}}", pkg), "\n") {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatalf("go list -deps %s named no package of this repository", pkg)
	}
	sources[pkg] = out
	return out
}

// otherArch is an architecture this machine is not, so that a Tiltfile
// compiling for the machine rather than the node shows.
func otherArch() string {
	if hostGOARCH() == "arm64" {
		return "amd64"
	}
	return "arm64"
}

// tiltProblems runs a Tiltfile against a cluster whose node has the
// architecture nodeArch ("": no cluster answers) and checks everything it
// names against the repository and the dev overlay it deploys.
func tiltProblems(t *testing.T, path, nodeArch string) []string {
	t.Helper()
	var bad []string
	errorf := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	tl := runTiltfile(t, path, nodeArch)
	absRoot, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	// abs is a path the Tiltfile names, relative to its directory or
	// absolute (go list answers with absolute directories).
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return filepath.Clean(p)
		}
		return filepath.Join(absRoot, p)
	}
	exists := func(what, p string) {
		if rel, err := filepath.Rel(absRoot, abs(p)); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			errorf("%s: %s is outside the repository", what, p)
		} else if _, err := os.Stat(abs(p)); err != nil {
			errorf("%s: %s does not exist", what, p)
		}
	}
	if len(tl.yamlDir) != 1 || tl.yamlDir[0] != "kustomize/overlays/dev" {
		return append(bad, fmt.Sprintf("k8s_yaml of %v, want the dev overlay", tl.yamlDir))
	}
	dev := load(t, build{dir: filepath.Join(root, tl.yamlDir[0])})

	// The binaries run on the node: each is compiled for its
	// architecture, or this machine's when no node answers.
	wantArch, archFrom := nodeArch, "the node is "+nodeArch
	if nodeArch == "" {
		wantArch, archFrom = hostGOARCH(), "no node answered and this machine is "+hostGOARCH()
	}
	asked, _ := os.ReadFile(tl.kubectlLog)
	archProblem := func(format string, args ...any) {
		if len(asked) == 0 {
			errorf(format+" (the Tiltfile never asked kubectl)", args...)
		} else {
			errorf(format+" (the Tiltfile asked: %s)", append(args, strings.TrimSpace(string(asked)))...)
		}
	}

	// Compiled binaries: what each local_resource writes, for which
	// architecture, and whether its deps watch everything it is built from.
	outputs := map[string]string{}
	builtWith := map[string]string{} // output -> its -tags
	wantTags := imageTags(t)
	for name, kw := range tl.local {
		deps := strs(kw["deps"])
		for _, d := range deps {
			exists("local_resource "+name+" deps", d)
		}
		cmd := fmt.Sprint(kw["cmd"])
		if m := outputFlag.FindStringSubmatch(cmd); m != nil {
			outputs[m[1]] = name
			if tags := tagsFlag.FindStringSubmatch(cmd); tags != nil {
				builtWith[m[1]] = tags[1]
			}
		}
		pkg := goBuild.FindStringSubmatch(cmd)
		if pkg == nil {
			continue
		}
		if m := goarchVar.FindStringSubmatch(cmd); m == nil || m[1] != wantArch {
			archProblem("local_resource %s compiles with %q, but %s", name, goarchVar.FindString(cmd), archFrom)
		}
		for _, src := range repoSources(t, pkg[1]) {
			if !slices.ContainsFunc(deps, func(d string) bool {
				return abs(d) == src || strings.HasPrefix(src, abs(d)+string(filepath.Separator))
			}) {
				rel, _ := filepath.Rel(absRoot, src)
				errorf("local_resource %s: %s is built from %s, which its deps do not watch (an edit there would rebuild nothing)", name, pkg[1], rel)
			}
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
		if platform, _ := kw["platform"].(string); platform != "linux/"+wantArch {
			archProblem("docker_build %s builds for platform %q, but %s", ref, platform, archFrom)
		}
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
			} else if builtWith[local] != wantTags {
				// Tilt's images carry what make images builds: an
				// imageproc with SQLite would hide a missing DATABASE_URL.
				errorf("local_resource %s builds %s with -tags %q, but make images builds the images' binaries with -tags %q",
					outputs[local], local, builtWith[local], wantTags)
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

// TestTiltfile runs the Tiltfile against an arm64 node (minikube on Apple
// silicon), an amd64 node, and no cluster at all.
func TestTiltfile(t *testing.T) {
	for _, node := range []string{"arm64", "amd64", ""} {
		name := node + " node"
		if node == "" {
			name = "no cluster"
		}
		t.Run(name, func(t *testing.T) {
			for _, problem := range tiltProblems(t, filepath.Join(root, "Tiltfile"), node) {
				t.Error(problem)
			}
		})
	}
}

// TestTiltfileChecksCatchBreaks edits the Tiltfile one mistake at a time.
func TestTiltfileChecksCatchBreaks(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(root, "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		from, to, want string
		node           string // the node's architecture: arm64 unless named
		noCluster      bool   // no node answers
	}{
		{from: "port_forwards=['8080:8080']", to: "port_forwards=['8080:8081']", want: "does not expose"},
		{from: "sync(binary, '/dev-bin/' + svc)", to: "sync(binary, '/app/' + svc)", want: "not on a mounted volume"},
		{from: "target='dev'", to: "target='devel'", want: "no target"},
		{from: "k8s_resource(\n    'postgres',", to: "k8s_resource(\n    'postgresql',", want: "no such workload"},
		{from: "only=[binary, 'docker/']", to: "only=['docker/']", want: "not in the build context"},
		{from: "link('http://localhost:8080', 'kubelab UI')", to: "link('http://localhost:8000', 'kubelab UI')", want: "none of its port forwards"},
		{from: "kustomize('kustomize/overlays/dev')", to: "kustomize('kustomize/overlays/minikube')", want: "want the dev overlay"},
		{from: "deps = ['go.work']", to: "deps = ['go.wrk']", want: "does not exist"},
		{from: "deps = ['go.work']", to: "deps = ['/tmp']", want: "outside the repository"},
		// The deps kubelab had: the worker's missed imageproc's pipeline.
		{from: "deps=source_deps(svc),", to: "deps=['services/' + svc, 'services/platform', 'proto/gen', 'go.work'],",
			want: "./services/worker is built from services/imageproc/pipeline, which its deps do not watch"},
		// Only the service's own packages, not what they import.
		{from: "go list -deps -f", to: "go list -f", want: "is built from services/platform/"},
		// The GOARCH kubelab had, on an arm64 node.
		{from: "GOARCH=%s go build -trimpath -tags nosqlite,grpcnotrace -o %s ./services/%s' % (GOARCH, binary, svc)",
			to: "GOARCH=amd64 go build -trimpath -tags nosqlite,grpcnotrace -o %s ./services/%s' % (binary, svc)", want: `"GOARCH=amd64", but the node is arm64`},
		{from: "platform='linux/' + GOARCH", to: "platform='linux/amd64'", want: `"linux/amd64", but the node is arm64`},
		// Tilt's images are the cluster's: without SQLite.
		{from: "go build -trimpath -tags nosqlite,grpcnotrace -o", to: "go build -trimpath -o", want: `with -tags "", but make images builds the images' binaries with -tags "nosqlite,grpcnotrace"`},
		{from: "-tags nosqlite,grpcnotrace -o", to: "-tags grpcnotrace -o", want: `with -tags "grpcnotrace", but`},
		// This machine's architecture whatever the node's.
		{from: "GOARCH = NODE_ARCH or", to: "GOARCH =", node: otherArch(), want: "but the node is " + otherArch()},
		// With no cluster, anything but this machine's architecture.
		{from: "NODE_ARCH or str(local('go env GOARCH', quiet=True))", to: "NODE_ARCH or str(local('echo " + otherArch() + "', quiet=True))",
			noCluster: true, want: "but no node answered and this machine is " + hostGOARCH()},
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
			node := cmp.Or(tt.node, "arm64")
			if tt.noCluster {
				node = ""
			}
			problems := tiltProblems(t, path, node)
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
