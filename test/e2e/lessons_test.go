//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// onTestCluster is every command of the lessons that needs minikube
// itself, and what the runner runs in its place on the test cluster. It
// replaces exactly these strings in a runnable block, and nothing else: a
// block that still calls minikube after them fails before anything runs.
var onTestCluster = []struct{ minikube, here, why string }{
	{"minikube start --addons=ingress,metrics-server",
		"kubectl get apiservice v1beta1.metrics.k8s.io && kubectl get ingressclass nginx",
		"the cluster is up, with metrics-server and an IngressClass nginx (Traefik serves it)"},
	{"make images-minikube", "true",
		"cluster-up imported exactly the images it builds (TestMinikubeREADME compares the two lists)"},
	{"minikube service -n kubelab frontend --url", "echo http://" + nodeIP + ":30080",
		"what it prints on Linux: the NodePort on the node's address"},
	{"minikube ip", "echo " + nodeIP, "the node's address"},
	{"minikube node add", clusterScript + " node-add",
		"the test cluster's other nodes exist from the start, parked (tainted) until a lesson adds them"},
	{"minikube node stop", clusterScript + " node-stop",
		"the node's kubelet, runtime and containers are killed and its link taken down"},
	{"minikube node start", clusterScript + " node-start", "the node's runtime, kubelet and kube-proxy start again"},
}

// clusterScript is the test cluster's script, from the repository root
// where the lessons run.
const clusterScript = "test/cluster/cluster.sh"

// lessonsDir holds the lessons; the runner runs the English ones, and
// test/deploy proves the Japanese ones hold the same blocks.
const lessonsDir = "../../docs/lessons/en"

const (
	blockTimeout = 2 * time.Minute
	retryEvery   = 2 * time.Second
)

// lessonBlock is one runnable block of a lesson, as written and as run.
type lessonBlock struct {
	file          string
	line, n       int
	written, runs string
	// why is the reason for each onTestCluster replacement made.
	why       []string
	expect    string
	hasExpect bool
	fails     bool
	retry     time.Duration
	timeout   time.Duration
}

func (b lessonBlock) String() string {
	return fmt.Sprintf("%s:%d, block %d", b.file, b.line, b.n)
}

type lesson struct {
	name   string
	blocks []lessonBlock
}

var (
	fenceOpen = regexp.MustCompile("^(```+|~~~+)(.*)$")
	// minikube as a command: not inside a word, a target (deploy-minikube)
	// or a path (overlays/minikube).
	minikubeCommand = regexp.MustCompile(`(^|[^A-Za-z0-9_./-])minikube(\s|$)`)
	ansiEscape      = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
)

// readLessons parses every English lesson, in file order, and maps its
// minikube commands; a block it cannot read is a failure, before anything
// runs.
func readLessons(t *testing.T) []lesson {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(lessonsDir, "*.md"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no lessons in %s (%v)", lessonsDir, err)
	}
	slices.Sort(paths)
	var lessons []lesson
	var problems []string
	for _, p := range paths {
		text, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		blocks, errs := parseLesson(strings.TrimPrefix(p, "../../"), string(text))
		problems = append(problems, errs...)
		lessons = append(lessons, lesson{name: strings.TrimSuffix(filepath.Base(p), ".md"), blocks: blocks})
	}
	if len(problems) > 0 {
		t.Fatalf("the lessons cannot be run as written:\n%s", strings.Join(problems, "\n"))
	}
	return lessons
}

// parseLesson reads the runnable blocks ("sh run [options]") of one
// lesson and their expected output ("text expect", the next fenced block).
// The format is docs/lessons/README.md's; test/deploy checks it the same
// way.
func parseLesson(file, text string) (blocks []lessonBlock, problems []string) {
	lines := strings.Split(text, "\n")
	lastWasRun := false
	for i := 0; i < len(lines); i++ {
		m := fenceOpen.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		start, marker, info := i+1, m[1], strings.TrimSpace(m[2])
		var body []string
		for i++; i < len(lines); i++ {
			if t := strings.TrimSpace(lines[i]); strings.HasPrefix(t, marker) && strings.Trim(t, marker[:1]) == "" {
				break
			}
			body = append(body, lines[i])
		}
		where := fmt.Sprintf("%s:%d", file, start)
		fields := strings.Fields(info)
		isRun := len(fields) >= 2 && fields[0] == "sh" && fields[1] == "run"
		switch {
		case isRun:
			b := lessonBlock{file: file, line: start, n: len(blocks) + 1, written: strings.Join(body, "\n"), timeout: blockTimeout}
			for _, opt := range fields[2:] {
				key, value, _ := strings.Cut(opt, "=")
				var err error
				switch key {
				case "fails":
					b.fails = true
				case "retry":
					b.retry, err = time.ParseDuration(value)
				case "timeout":
					b.timeout, err = time.ParseDuration(value)
				default:
					err = errors.New("unknown option")
				}
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: option %q: %v", where, opt, err))
				}
			}
			b.runs = b.written
			for _, m := range onTestCluster {
				if strings.Contains(b.runs, m.minikube) {
					b.runs = strings.ReplaceAll(b.runs, m.minikube, m.here)
					b.why = append(b.why, m.minikube+": "+m.why)
				}
			}
			if minikubeCommand.MatchString(b.runs) {
				problems = append(problems, fmt.Sprintf("%s: calls minikube in a way onTestCluster does not map:\n%s", where, b.written))
			}
			blocks = append(blocks, b)
		case info == "text expect" && lastWasRun:
			blocks[len(blocks)-1].expect, blocks[len(blocks)-1].hasExpect = strings.Join(body, "\n"), true
		case len(fields) > 1:
			// Plain blocks have a language at most: more is a marker
			// misspelt, which must not leave a command unchecked.
			problems = append(problems, fmt.Sprintf("%s: info string %q: a runnable block is \"sh run [options]\", its expected output \"text expect\" right after it", where, info))
		}
		lastWasRun = isRun
	}
	return blocks, problems
}

// expectLine compiles one line of expected output: "…" matches any text,
// a run of spaces any run of whitespace (or none, beside "…"), and the
// rest itself; the whole (trimmed) output line must match.
func expectLine(want string) *regexp.Regexp {
	type token struct {
		space, any bool
		text       string
	}
	var toks []token
	for _, r := range want {
		switch r {
		case '…':
			toks = append(toks, token{any: true})
		case ' ', '\t':
			if len(toks) == 0 || !toks[len(toks)-1].space {
				toks = append(toks, token{space: true})
			}
		default:
			if len(toks) == 0 || toks[len(toks)-1].space || toks[len(toks)-1].any {
				toks = append(toks, token{})
			}
			toks[len(toks)-1].text += string(r)
		}
	}
	var re strings.Builder
	re.WriteString("^")
	for i, tok := range toks {
		switch {
		case tok.any:
			re.WriteString(".*")
		case tok.space && ((i > 0 && toks[i-1].any) || (i+1 < len(toks) && toks[i+1].any)):
			re.WriteString(`\s*`)
		case tok.space:
			re.WriteString(`\s+`)
		default:
			re.WriteString(regexp.QuoteMeta(tok.text))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String())
}

// matchOutput checks that every non-blank expected line matches an output
// line, in order, each output line matching at most one.
func matchOutput(expect, out string) error {
	got := strings.Split(ansiEscape.ReplaceAllString(out, ""), "\n")
	i := 0
	for _, want := range strings.Split(expect, "\n") {
		want = strings.TrimSpace(want)
		if want == "" || want == "…" {
			continue
		}
		re := expectLine(want)
		for i < len(got) && !re.MatchString(strings.TrimSpace(got[i])) {
			i++
		}
		if i == len(got) {
			return fmt.Errorf("no line matches %q (in order, after the lines matched before it)", want)
		}
		i++
	}
	return nil
}

// lessonShell runs a lesson's blocks as one terminal would: bash in the
// repository root, the lower-case shell variables of one block kept for
// the next (saved on exit, sourced on start), and its own copy of the
// kubeconfig, since a lesson may change its context's namespace.
type lessonShell struct {
	dir, state, kubeconfig string
}

func newLessonShell(t *testing.T) *lessonShell {
	t.Helper()
	dir := t.TempDir()
	sh := &lessonShell{dir: dir, state: filepath.Join(dir, "state.sh"), kubeconfig: filepath.Join(dir, "kubeconfig")}
	if err := os.WriteFile(sh.state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sh.kubeconfig, []byte(kubectl(t, "config", "view", "--raw", "--flatten")), 0o600); err != nil {
		t.Fatal(err)
	}
	return sh
}

// run runs one attempt of a block and returns what it printed.
func (sh *lessonShell) run(ctx context.Context, b lessonBlock) (string, error) {
	script := fmt.Sprintf(`set -e
. %[1]q
__save() { local __v; for __v in $(compgen -v); do if [[ $__v =~ ^[a-z][a-z0-9_]*$ ]]; then declare -p "$__v"; fi; done > %[1]q; }
trap '__rc=$?; __save; exit $__rc' EXIT
%[2]s
`, sh.state, b.runs)
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "KUBECONFIG="+sh.kubeconfig)
	// kubectl and make run as children: end the whole process group on a
	// timeout, not just bash.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("still running after %v", b.timeout)
	}
	return out.String(), err
}

// check runs a block until it exits as expected and prints what it should,
// once or, with retry, until the retry time is up.
func (sh *lessonShell) check(t *testing.T, b lessonBlock) {
	t.Helper()
	deadline := time.Now().Add(b.retry)
	for attempt := 1; ; attempt++ {
		out, err := sh.run(t.Context(), b)
		t.Logf("%s, attempt %d:\n$ %s\n%s", b, attempt, b.runs, out)
		problem := ""
		switch {
		case b.fails && err == nil:
			problem = "succeeded, but the lesson says it fails"
		case !b.fails && err != nil:
			problem = fmt.Sprintf("failed: %v", err)
		case b.hasExpect:
			if merr := matchOutput(b.expect, out); merr != nil {
				problem = merr.Error()
			}
		}
		if problem == "" {
			return
		}
		if time.Now().Add(retryEvery).After(deadline) {
			diagnose(t, "app.kubernetes.io/part-of=kubelab")
			ran := ""
			if len(b.why) > 0 {
				ran = fmt.Sprintf("\n(run on the test cluster as: %s; %s)", b.runs, strings.Join(b.why, "; "))
			}
			t.Fatalf("%s: %s\n$ %s%s\n%s", b, problem, b.written, ran, out)
		}
		time.Sleep(retryEvery)
	}
}

func namespaces(t *testing.T) []string {
	t.Helper()
	return strings.Fields(kubectl(t, "get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}"))
}

// TestLessonFormat reads every lesson and checks the matcher, without the
// cluster: a lesson the runner cannot read fails here in a second, not
// after the others have run.
func TestLessonFormat(t *testing.T) {
	lessons := readLessons(t)
	n := 0
	for _, l := range lessons {
		n += len(l.blocks)
	}
	t.Logf("%d lessons, %d runnable blocks", len(lessons), n)
	out := "NAME                  READY   STATUS    RESTARTS      AGE\r\n" +
		"frontend-7d9f-abcde   1/1     Running   1 (12s ago)   3m\n" +
		"\x1b[0;32mKubernetes control plane\x1b[0m is running at https://10.200.0.2:6443\n"
	for expect, ok := range map[string]bool{
		"NAME READY STATUS RESTARTS AGE\nfrontend-… 1/1 Running 1 (… ago) …": true,
		"Kubernetes control plane is running at https://…":                   true,
		"frontend-…   1/1   Running   …":                                     true,
		"\n…\nNAME   READY\n":                                                false, // the whole line must match
		"frontend-… 1/1 Running\nNAME READY STATUS RESTARTS AGE":             false, // in order
		"frontend-… 0/1 Running …":                                           false,
		"NAMEREADY STATUS RESTARTS AGE":                                      false,
	} {
		if err := matchOutput(expect, out); (err == nil) != ok {
			t.Errorf("matchOutput(%q) = %v, want a match: %v", expect, err, ok)
		}
	}
	blocks, problems := parseLesson("x.md", "```sh run retry=5s\nminikube ip\n```\n\n```text expect\n10.200.0.2\n```\n"+
		"```sh run\nminikube dashboard\n```\n```sh run sometimes\nmake deploy-minikube\n```\n```text expected\n```\n")
	if len(blocks) != 3 || blocks[0].runs != "echo "+nodeIP || !blocks[0].hasExpect || blocks[0].retry != 5*time.Second {
		t.Errorf("parsed %+v", blocks)
	}
	if len(problems) != 3 || !strings.Contains(problems[0], "does not map") || !strings.Contains(problems[1], `"sometimes"`) ||
		!strings.Contains(problems[2], `"text expected"`) {
		t.Errorf("problems %q, want the unmapped minikube dashboard, the unknown option and the misspelt marker", problems)
	}
}

// onlyLessons runs some lessons against kubelab as it is deployed, for
// whoever is writing them: go test -tags e2e -run TestLessons -args
// -lessons=07,11.
var onlyLessons = flag.String("lessons", "", "comma-separated lesson numbers to run alone, on kubelab as deployed")

// createsNamespace finds the namespaces a lesson makes, so that a failed
// lesson's are removed too (a failed block skips the lesson's cleanup).
var createsNamespace = regexp.MustCompile(`kubectl create (?:namespace|ns) ([a-z0-9-]+)`)

// createsKubelabPod finds a bare pod a lesson makes in kubelab's namespace
// (lesson 13's imageproc-small, which needs the Secret postgres there),
// so that a failed lesson's is removed too: later lessons list kubelab's
// pods.
var createsKubelabPod = regexp.MustCompile(`kubectl create -n kubelab -f - <<'EOF'\napiVersion: v1\nkind: Pod\nmetadata:\n  name: ([a-z0-9-]+)\n`)

// inSequence tells a lesson that changes kubelab's own namespace: it
// starts by deploying kubelab, and runs in course order with the others
// that do. The rest work in namespaces of their own and only read
// kubelab's, so they run beside that sequence.
func (l lesson) inSequence() bool {
	return len(l.blocks) > 0 && strings.TrimSpace(l.blocks[0].written) == "make deploy-minikube"
}

// alone tells a lesson that adds, stops or starts nodes: it drains and
// kills what every other lesson runs on, so it runs after them all.
func (l lesson) alone() bool {
	return slices.ContainsFunc(l.blocks, func(b lessonBlock) bool { return strings.Contains(b.written, "minikube node ") })
}

// run runs every block of one lesson in a fresh shell, and removes the
// namespaces it made if a block fails.
func (l lesson) run(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, b := range l.blocks {
			for _, m := range createsNamespace.FindAllStringSubmatch(b.runs, -1) {
				_, _ = runKubectl("delete", "namespace", m[1], "--wait=false", "--ignore-not-found")
			}
			for _, m := range createsKubelabPod.FindAllStringSubmatch(b.runs, -1) {
				_, _ = runKubectl("delete", "pod", m[1], "-n", learnerNS, "--wait=false", "--ignore-not-found")
			}
		}
	})
	began := time.Now()
	sh := newLessonShell(t)
	for _, b := range l.blocks {
		sh.check(t, b)
	}
	t.Logf("%s: %d blocks in %v", l.name, len(l.blocks), time.Since(began).Round(time.Second))
}

// TestLessons runs every runnable block of every English lesson on the
// test cluster, in order, as a learner following the course would, and
// checks what each prints. Lesson 1 deploys the minikube overlay into an
// empty namespace (make deploy-minikube), as a learner's first deploy;
// then the lessons that change kubelab's namespace run one after another
// in course order, and beside them every other lesson, each in its own
// namespace; a lesson that adds, stops or starts nodes runs last, alone.
// Until a lesson adds them, every node but the first is parked: the
// course begins on a learner's single node. At the end no namespace a
// lesson made may remain, and kubelab's is removed, as
// TestMinikubeREADME leaves it.
func TestLessons(t *testing.T) {
	lessons := readLessons(t)
	// Lessons 1-20 run beside the suite's other tests, on the first node;
	// one that adds nodes waits until it has the cluster to itself.
	t.Parallel()
	turns[learnerNS].Lock()
	nodesInUse.RLock()
	namespaceOf.Store(t.Name(), learnerNS)
	shared := true
	// After every other cleanup: the namespace is removed before the next
	// test's turn.
	t.Cleanup(func() {
		if shared {
			nodesInUse.RUnlock()
		}
		turns[learnerNS].Unlock()
	})
	alone := func(t *testing.T, l lesson) {
		if shared {
			nodesInUse.RUnlock()
			shared = false
		}
		nodesInUse.Lock()
		defer nodesInUse.Unlock()
		defer parkNodes(t, "node-park")
		t.Run(l.name, l.run)
	}
	if *onlyLessons != "" {
		want := strings.Split(*onlyLessons, ",")
		for _, l := range lessons {
			switch {
			case !slices.ContainsFunc(want, func(n string) bool { return strings.HasPrefix(l.name, n+"-") }):
			case l.alone():
				alone(t, l)
			default:
				t.Run(l.name, l.run)
			}
		}
		return
	}
	before := namespaces(t)
	freshNamespace(t)
	start := time.Now()
	t.Cleanup(func() {
		out, _ := runKubectl("get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}")
		for _, n := range strings.Fields(out) {
			// The other tests' namespaces come and go beside the lessons.
			if n != learnerNS && n != suiteNS && !strings.HasPrefix(n, "e2e-") && !slices.Contains(before, n) {
				if !t.Failed() {
					t.Errorf("a lesson left the namespace %s behind: its cleanup should delete it", n)
				}
				_, _ = runKubectl("delete", "namespace", n, "--wait=false")
			}
		}
	})
	if !t.Run(lessons[0].name, lessons[0].run) {
		t.Fatalf("%s deploys kubelab for every other lesson", lessons[0].name)
	}
	t.Run("course", func(t *testing.T) {
		t.Run("in-sequence", func(t *testing.T) {
			t.Parallel()
			for _, l := range lessons[1:] {
				if l.inSequence() && !l.alone() {
					t.Run(l.name, l.run)
				}
			}
		})
		for _, l := range lessons[1:] {
			if !l.inSequence() && !l.alone() {
				t.Run(l.name, func(t *testing.T) {
					t.Parallel()
					l.run(t)
				})
			}
		}
	})
	for _, l := range lessons[1:] {
		if l.alone() {
			alone(t, l)
		}
	}
	t.Logf("all lessons: %v", time.Since(start).Round(time.Second))
}
