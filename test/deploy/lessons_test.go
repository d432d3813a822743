package deploy

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	appsv1 "k8s.io/api/apps/v1"
)

// The lessons in docs/lessons are checked here without a cluster, and
// their runnable blocks are run on one by test/e2e/lessons_test.go. The
// format is described in docs/lessons/README.md; this file and the e2e
// runner read it the same way, strictly, so a block neither sees is a
// failure rather than a command nobody runs.

const lessonsDir = "docs/lessons"

// mdFile is a Markdown file, by its path from the repository root.
type mdFile struct{ Path, Text string }

// mdFence is a fenced code block: its info string, its body, and the line
// its opening fence is on.
type mdFence struct {
	Line       int
	Info, Body string
}

// lessonName matches a lesson file: two digits, a slug.
var lessonName = regexp.MustCompile(`^\d\d-[a-z0-9]+(-[a-z0-9]+)*\.md$`)

// readLessons reads every Markdown file under docs/lessons, and the
// repository's README.md, whose course index links into it.
func readLessons(t *testing.T) map[string]mdFile {
	t.Helper()
	files := map[string]mdFile{}
	err := filepath.WalkDir(filepath.Join(root, lessonsDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".md") {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = mdFile{filepath.ToSlash(rel), string(b)}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	files["README.md"] = mdFile{"README.md", string(b)}
	return files
}

// lessonsIn returns the lessons of one language ("en", "ja") by file name.
func lessonsIn(files map[string]mdFile, lang string) map[string]mdFile {
	out := map[string]mdFile{}
	for p, f := range files {
		if dir, name := path.Split(p); dir == lessonsDir+"/"+lang+"/" {
			out[name] = f
		}
	}
	return out
}

// mdFences splits a Markdown text into its fenced blocks and the prose
// outside them (fenced lines blanked, so line numbers stay). A fence is
// three or more backticks or tildes; it closes at a line of at least as
// many of the same, as CommonMark says, so a ```` block can show a ```
// block.
func mdFences(text string) (blocks []mdFence, prose []string) {
	lines := strings.Split(text, "\n")
	var open *mdFence
	var marker string
	var body []string
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if open == nil {
			if m := mdFenceOpen.FindStringSubmatch(trimmed); m != nil {
				open, marker, body = &mdFence{Line: i + 1, Info: strings.TrimSpace(m[2])}, m[1], nil
				prose = append(prose, "")
				continue
			}
			prose = append(prose, line)
			continue
		}
		prose = append(prose, "")
		if strings.HasPrefix(trimmed, marker) && strings.Trim(trimmed, marker[:1]) == "" {
			open.Body = strings.Join(body, "\n")
			blocks = append(blocks, *open)
			open = nil
			continue
		}
		body = append(body, line)
	}
	if open != nil {
		open.Body = strings.Join(body, "\n")
		blocks = append(blocks, *open)
	}
	return blocks, prose
}

var mdFenceOpen = regexp.MustCompile("^(```+|~~~+)(.*)$")

// lessonRunBlock is a runnable block and its expected output, as the e2e
// runner reads them; its options are only checked here.
type lessonRunBlock struct {
	Line          int
	Info, Command string
	Expect        *mdFence
}

// lessonBlocks reads a lesson's runnable blocks: info string "sh run" and
// options, each optionally followed by its "text expect" block.
func lessonBlocks(f mdFile) (runs []lessonRunBlock, problems []string) {
	blocks, _ := mdFences(f.Text)
	for i, b := range blocks {
		fields := strings.Fields(b.Info)
		if len(fields) < 2 {
			continue // a plain block: a language at most
		}
		where := fmt.Sprintf("%s:%d", f.Path, b.Line)
		switch {
		case fields[0] == "sh" && fields[1] == "run":
			r := lessonRunBlock{Line: b.Line, Info: b.Info, Command: b.Body}
			seen := map[string]bool{}
			for _, opt := range fields[2:] {
				key, value, hasValue := strings.Cut(opt, "=")
				if seen[key] {
					problems = append(problems, fmt.Sprintf("%s: option %q twice", where, key))
				}
				seen[key] = true
				switch {
				case key == "fails" && !hasValue:
				case (key == "retry" || key == "timeout") && hasValue:
					if d, err := time.ParseDuration(value); err != nil || d <= 0 {
						problems = append(problems, fmt.Sprintf("%s: %s=%s is not a positive duration", where, key, value))
					}
				default:
					problems = append(problems, fmt.Sprintf("%s: unknown option %q (fails, retry=DURATION, timeout=DURATION)", where, opt))
				}
			}
			if strings.TrimSpace(r.Command) == "" {
				problems = append(problems, fmt.Sprintf("%s: an empty runnable block", where))
			}
			runs = append(runs, r)
		case b.Info == "text expect":
			// An expect block belongs to the fenced block just before it,
			// which must be a runnable block without one yet.
			if i == 0 || len(runs) == 0 || runs[len(runs)-1].Line != blocks[i-1].Line || runs[len(runs)-1].Expect != nil {
				problems = append(problems, fmt.Sprintf("%s: an expect block must directly follow a runnable block (prose between is fine, another block is not)", where))
				continue
			}
			runs[len(runs)-1].Expect = &blocks[i]
		default:
			problems = append(problems, fmt.Sprintf("%s: info string %q: a runnable block is \"sh run [options]\", expected output \"text expect\"", where, b.Info))
		}
	}
	return runs, problems
}

// checkLessonBlocks: every runnable and expect block is well formed, and
// every file under en/ and ja/ is named like a lesson.
func checkLessonBlocks(files map[string]mdFile) []string {
	var bad []string
	for _, lang := range []string{"en", "ja"} {
		for _, name := range slices.Sorted(maps.Keys(lessonsIn(files, lang))) {
			f := files[lessonsDir+"/"+lang+"/"+name]
			if !lessonName.MatchString(name) {
				bad = append(bad, fmt.Sprintf("%s: a lesson file is named NN-slug.md", f.Path))
			}
			runs, problems := lessonBlocks(f)
			bad = append(bad, problems...)
			if len(runs) == 0 {
				bad = append(bad, fmt.Sprintf("%s: no runnable block: nothing in this lesson is checked on a cluster", f.Path))
			}
		}
	}
	return bad
}

// checkLanguages: the English and Japanese lessons are the same files,
// holding the same runnable blocks, with the same options and expected
// output, in the same order. The e2e runner runs the English ones only.
func checkLanguages(files map[string]mdFile) []string {
	var bad []string
	en, ja := lessonsIn(files, "en"), lessonsIn(files, "ja")
	if len(en) == 0 {
		bad = append(bad, "no lessons under "+lessonsDir+"/en")
	}
	for _, name := range slices.Sorted(maps.Keys(en)) {
		jf, ok := ja[name]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s/en/%s has no Japanese version %s/ja/%s", lessonsDir, name, lessonsDir, name))
			continue
		}
		er, _ := lessonBlocks(en[name])
		jr, _ := lessonBlocks(jf)
		for i := range max(len(er), len(jr)) {
			switch {
			case i >= len(er):
				bad = append(bad, fmt.Sprintf("%s:%d: runnable block %d has no English counterpart", jf.Path, jr[i].Line, i+1))
			case i >= len(jr):
				bad = append(bad, fmt.Sprintf("%s:%d: runnable block %d has no Japanese counterpart", en[name].Path, er[i].Line, i+1))
			case lessonBlockText(er[i]) != lessonBlockText(jr[i]):
				bad = append(bad, fmt.Sprintf("runnable block %d differs: %s:%d and %s:%d must hold the same command, options and expected output",
					i+1, en[name].Path, er[i].Line, jf.Path, jr[i].Line))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(ja)) {
		if _, ok := en[name]; !ok {
			bad = append(bad, fmt.Sprintf("%s/ja/%s has no English version %s/en/%s", lessonsDir, name, lessonsDir, name))
		}
	}
	return bad
}

func lessonBlockText(r lessonRunBlock) string {
	s := r.Info + "\n" + r.Command
	if r.Expect != nil {
		s += "\n" + r.Expect.Info + "\n" + r.Expect.Body
	}
	return s
}

// checkLessonIndex: the course index links every lesson in both
// languages, and the repository's README links the index.
func checkLessonIndex(files map[string]mdFile) []string {
	var bad []string
	index, ok := files[lessonsDir+"/README.md"]
	if !ok {
		return []string{lessonsDir + "/README.md, the course index, is missing"}
	}
	targets := map[string]bool{}
	for _, l := range mdLinks(index) {
		targets[path.Clean(path.Join(lessonsDir, l.target))] = true
	}
	for _, lang := range []string{"en", "ja"} {
		for _, name := range slices.Sorted(maps.Keys(lessonsIn(files, lang))) {
			if p := lessonsDir + "/" + lang + "/" + name; !targets[p] {
				bad = append(bad, fmt.Sprintf("%s does not link %s", index.Path, p))
			}
		}
	}
	readme := false
	for _, l := range mdLinks(files["README.md"]) {
		readme = readme || strings.HasPrefix(path.Clean(l.target), lessonsDir)
	}
	if !readme {
		bad = append(bad, "README.md does not link the lessons in "+lessonsDir)
	}
	return bad
}

// mdLink is a relative Markdown link outside code.
type mdLink struct {
	line           int
	target, anchor string
}

var (
	mdLinkRe   = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	mdCodeSpan = regexp.MustCompile("`[^`]*`")
)

// mdLinks returns the relative links of f, outside code blocks and spans.
func mdLinks(f mdFile) []mdLink {
	_, prose := mdFences(f.Text)
	var out []mdLink
	for i, line := range prose {
		for _, m := range mdLinkRe.FindAllStringSubmatch(mdCodeSpan.ReplaceAllString(line, ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, anchor, _ := strings.Cut(target, "#")
			out = append(out, mdLink{line: i + 1, target: target, anchor: anchor})
		}
	}
	return out
}

// checkLessonLinks: every relative link of the lessons, the index, and
// the README's links into the lessons resolve, anchors included.
func checkLessonLinks(files map[string]mdFile, repo string) []string {
	var bad []string
	for _, p := range slices.Sorted(maps.Keys(files)) {
		f := files[p]
		for _, l := range mdLinks(f) {
			if p == "README.md" && !strings.HasPrefix(path.Clean(l.target), lessonsDir) {
				continue // the README's other links are not the lessons' to check
			}
			target := path.Clean(path.Join(path.Dir(p), l.target))
			if l.target == "" {
				target = p
			}
			where := fmt.Sprintf("%s:%d: link %s", p, l.line, l.target)
			if l.anchor != "" {
				where += "#" + l.anchor
			}
			text, err := lessonLinkTarget(files, repo, target)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s does not resolve: %v", where, err))
				continue
			}
			if l.anchor != "" && !slices.Contains(mdAnchors(text), l.anchor) {
				bad = append(bad, fmt.Sprintf("%s: %s has no heading with that anchor", where, target))
			}
		}
	}
	return bad
}

// lessonLinkTarget reads a link's target: a file being checked (possibly
// changed in memory by a test), else the file or directory on disk.
func lessonLinkTarget(files map[string]mdFile, repo, target string) (string, error) {
	if f, ok := files[target]; ok {
		return f.Text, nil
	}
	if strings.HasPrefix(target, "../") {
		return "", fmt.Errorf("it leaves the repository")
	}
	info, err := os.Stat(filepath.Join(repo, target))
	if err != nil {
		return "", err
	}
	if info.IsDir() {
		return "", nil
	}
	b, err := os.ReadFile(filepath.Join(repo, target))
	return string(b), err
}

var mdHeading = regexp.MustCompile(`^#{1,6}\s+(.*)$`)

// mdAnchors are the anchors GitHub gives a Markdown file's headings:
// lower case, spaces to hyphens, punctuation dropped (letters of any
// script stay), "-1", "-2" for repeats.
func mdAnchors(text string) []string {
	_, prose := mdFences(text)
	var out []string
	seen := map[string]int{}
	for _, line := range prose {
		m := mdHeading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		heading := strings.TrimSpace(strings.TrimRight(m[1], " #"))
		var b strings.Builder
		for _, r := range strings.ToLower(heading) {
			switch {
			case unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out = append(out, a+"-"+strconv.Itoa(n))
		} else {
			out = append(out, a)
		}
		seen[a]++
	}
	return out
}

// lessonRepoPaths are the repository files a lesson names: in backticks
// in its prose, or as a word of a command. A candidate is a relative path
// whose first element is a top-level entry of the repository, so that
// `app.kubernetes.io/name` or `/api/v1/info` are not taken for files.
func lessonRepoPaths(f mdFile, top map[string]bool) []mdLink {
	blocks, prose := mdFences(f.Text)
	var out []mdLink
	add := func(line int, word string) {
		word = strings.Trim(word, `"'(),.;:`)
		first, _, ok := strings.Cut(word, "/")
		if !ok || !top[first] || strings.ContainsAny(word, "$…*{}<>") {
			return
		}
		out = append(out, mdLink{line: line, target: strings.TrimSuffix(word, "/")})
	}
	for i, line := range prose {
		for _, span := range mdCodeSpan.FindAllString(line, -1) {
			if s := strings.Trim(span, "`"); !strings.ContainsAny(s, " \t") {
				add(i+1, s)
			}
		}
	}
	for _, b := range blocks {
		if !strings.HasPrefix(b.Info, "sh") {
			continue
		}
		for j, line := range strings.Split(b.Body, "\n") {
			for _, w := range strings.FieldsFunc(line, func(r rune) bool { return unicode.IsSpace(r) || r == '=' }) {
				add(b.Line+1+j, w)
			}
		}
	}
	return out
}

// checkLessonFiles: every repository file or directory a lesson (or the
// index) names exists.
func checkLessonFiles(files map[string]mdFile, repo string) []string {
	entries, err := os.ReadDir(repo)
	if err != nil {
		return []string{err.Error()}
	}
	top := map[string]bool{}
	for _, e := range entries {
		// bin/ and out/ are build output (ignored by Git): what they hold
		// depends on what was run here last (make build, make images).
		if !strings.HasPrefix(e.Name(), ".") && e.Name() != "bin" && e.Name() != "out" {
			top[e.Name()] = true
		}
	}
	var bad []string
	for _, p := range slices.Sorted(maps.Keys(files)) {
		if p == "README.md" {
			continue
		}
		for _, l := range lessonRepoPaths(files[p], top) {
			if _, err := os.Stat(filepath.Join(repo, l.target)); err != nil {
				bad = append(bad, fmt.Sprintf("%s:%d: names %s, which does not exist in the repository", p, l.line, l.target))
			}
		}
	}
	return bad
}

// lessonKinds are the names kubectl accepts for the kinds a lesson may
// name, with or without their API group (deployment.apps/frontend).
var lessonKinds = map[string]string{}

func init() {
	for kind, names := range map[string][]string{
		"Pod":                     {"pod", "pods", "po"},
		"Service":                 {"service", "services", "svc"},
		"Deployment":              {"deployment", "deployments", "deploy"},
		"ReplicaSet":              {"replicaset", "replicasets", "rs"},
		"StatefulSet":             {"statefulset", "statefulsets", "sts"},
		"ConfigMap":               {"configmap", "configmaps", "cm"},
		"Secret":                  {"secret", "secrets"},
		"Ingress":                 {"ingress", "ingresses", "ing"},
		"HorizontalPodAutoscaler": {"horizontalpodautoscaler", "horizontalpodautoscalers", "hpa"},
		"CronJob":                 {"cronjob", "cronjobs", "cj"},
		"Job":                     {"job", "jobs"},
		"PersistentVolumeClaim":   {"persistentvolumeclaim", "persistentvolumeclaims", "pvc"},
		"ServiceAccount":          {"serviceaccount", "serviceaccounts", "sa"},
		"Namespace":               {"namespace", "namespaces", "ns"},
		"NetworkPolicy":           {"networkpolicy", "networkpolicies", "netpol"},
		"PodDisruptionBudget":     {"poddisruptionbudget", "poddisruptionbudgets", "pdb"},
		"Role":                    {"role", "roles"},
		"RoleBinding":             {"rolebinding", "rolebindings"},
	} {
		for _, n := range names {
			lessonKinds[n] = kind
		}
	}
}

// lessonClusterMade are objects the cluster itself puts in every namespace.
var lessonClusterMade = []string{"ConfigMap/kube-root-ca.crt", "ServiceAccount/default"}

// lessonObjectRef is an object a lesson names.
type lessonObjectRef struct {
	line       int
	kind, name string
}

var (
	// kind/name, not inside a path or URL (services/frontend/internal is a
	// directory, /namespaces/kubelab/pods a URL). The group, when written,
	// is one of the kinds' API groups, so a label key such as
	// deployment.kubernetes.io/revision is not a Deployment.
	kindSlashName = regexp.MustCompile(`(^|[^A-Za-z0-9./_-])([A-Za-z]+)(?:\.(?:apps|autoscaling|batch|networking\.k8s\.io|policy|rbac\.authorization\.k8s\.io))?/([a-z0-9][a-z0-9.-]*)`)
	// Kind `name`, as prose writes it.
	kindBacktickName = regexp.MustCompile("\\b([A-Z][A-Za-z]+) `([a-z0-9][a-z0-9.-]*)`")
	// A namespace other than kubelab's on the same line.
	otherNamespaceFlag = regexp.MustCompile(`(?:\s-n|--namespace)[= ]+([a-z0-9-]+)|\s(?:-A|--all-namespaces)\b`)
)

// elsewhere tells a line that names a namespace other than kubelab's.
func elsewhere(line string) bool {
	if !strings.Contains(line, "-n") && !strings.Contains(line, "-A") {
		return false // every flag the pattern knows holds one of these
	}
	m := otherNamespaceFlag.FindStringSubmatch(line)
	return m != nil && m[1] != "kubelab"
}

// kubectlValueFlags are the kubectl flags whose value may be the next word.
var kubectlValueFlags = map[string]bool{
	"-n": true, "--namespace": true, "-l": true, "--selector": true, "-L": true, "--label-columns": true,
	"-o": true, "--output": true, "-c": true, "--container": true, "-f": true, "--filename": true,
	"-k": true, "--kustomize": true, "-p": true, "--patch": true, "--type": true, "--for": true,
	"--field-selector": true, "--context": true, "--image": true, "--replicas": true, "--timeout": true,
	"--sort-by": true, "--raw": true, "--from": true, "--name": true,
}

// lessonObjectRefs returns the objects a lesson names, and those it creates
// itself (kubectl create KIND NAME, kubectl run NAME), by kind/name.
func lessonObjectRefs(f mdFile) (refs []lessonObjectRef, created map[string]bool) {
	created = map[string]bool{}
	blocks, _ := mdFences(f.Text)
	lines := strings.Split(f.Text, "\n")
	generated := func(rest string) bool { return strings.HasPrefix(rest, "…") || strings.HasPrefix(rest, "$") }
	for i, line := range lines {
		if elsewhere(line) {
			continue
		}
		// Most lines hold neither a slash nor a backtick: skip the costly
		// scans there.
		if strings.Contains(line, "/") {
			for _, m := range kindSlashName.FindAllStringSubmatchIndex(line, -1) {
				kind, ok := lessonKinds[strings.ToLower(line[m[4]:m[5]])]
				name, rest := line[m[6]:m[7]], line[m[7]:]
				if !ok || generated(rest) || strings.HasSuffix(name, "-") || strings.HasSuffix(name, ".") ||
					(rest != "" && strings.ContainsAny(rest[:1], "/_ABCDEFGHIJKLMNOPQRSTUVWXYZ")) {
					continue // a path goes on (services/frontend/internal), a name does not
				}
				refs = append(refs, lessonObjectRef{i + 1, kind, name})
			}
		}
		if !strings.Contains(line, "`") {
			continue
		}
		for _, m := range kindBacktickName.FindAllStringSubmatch(line, -1) {
			if kind, ok := lessonKinds[strings.ToLower(m[1])]; ok && kind == m[1] {
				refs = append(refs, lessonObjectRef{i + 1, kind, m[2]})
			}
		}
	}
	for _, b := range blocks {
		if !strings.HasPrefix(b.Info, "sh") {
			continue
		}
		for _, ref := range lessonManifestObjects(b.Body) {
			created[ref.kind+"/"+ref.name] = true
		}
		for _, ref := range lessonManifestObjects(b.Body) {
			created[ref.kind+"/"+ref.name] = true
		}
		for j, line := range strings.Split(b.Body, "\n") {
			// What a command names in another namespace is not kubelab's,
			// but what it creates there the lesson may name later.
			elsewhere := elsewhere(line)
			if !strings.Contains(line, "kubectl") {
				continue
			}
			for _, cmd := range lessonKubectlCommands(line) {
				r, c := lessonCommandRefs(cmd)
				for _, ref := range r {
					if !elsewhere {
						refs = append(refs, lessonObjectRef{b.Line + 1 + j, ref.kind, ref.name})
					}
				}
				for _, ref := range c {
					created[ref.kind+"/"+ref.name] = true
				}
			}
		}
	}
	return refs, created
}

// manifestKindName finds each object of a manifest written in a command
// (kubectl create -f - <<EOF): its kind, and the name under its metadata.
var manifestKindName = regexp.MustCompile(`(?m)^kind:[ \t]*([A-Za-z]+)[ \t]*$(?:\n(?:[ a-z].*)?)*?\n  name:[ \t]*([a-z0-9][a-z0-9.-]*)[ \t]*$`)

// lessonManifestObjects returns the objects the manifests in one shell
// block create, so a lesson may name what it made itself.
func lessonManifestObjects(body string) []lessonObjectRef {
	var refs []lessonObjectRef
	for _, m := range manifestKindName.FindAllStringSubmatch(body, -1) {
		refs = append(refs, lessonObjectRef{kind: m[1], name: m[2]})
	}
	return refs
}

// lessonKubectlCommands splits a shell line into the argument lists of its
// kubectl commands (quotes removed; a pipe, ;, &&, $( or ) ends one).
func lessonKubectlCommands(line string) [][]string {
	var cmds [][]string
	var cur []string
	in := false
	for _, w := range lessonShellWords(line) {
		switch {
		case w == "|" || w == ";" || w == "&&" || w == "||" || w == ")" || w == "$(":
			if in {
				cmds = append(cmds, cur)
			}
			in, cur = false, nil
		case w == "kubectl" && !in:
			in = true
		case in:
			cur = append(cur, w)
		}
	}
	if in {
		cmds = append(cmds, cur)
	}
	return cmds
}

// lessonShellWords splits a line as the shell would, roughly: quotes
// group and are removed, and the operators lessonKubectlCommands needs are
// words of their own.
func lessonShellWords(line string) []string {
	var words []string
	var cur strings.Builder
	quote := rune(0)
	flush := func() {
		if cur.Len() > 0 {
			words = append(words, cur.String())
			cur.Reset()
		}
	}
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && cur.Len() == 0:
			flush()
			return words
		case unicode.IsSpace(r):
			flush()
		case r == '$' && i+1 < len(rs) && rs[i+1] == '(':
			flush()
			words = append(words, "$(")
			i++
		case r == '|' || r == ';' || r == ')' || r == '&':
			flush()
			op := string(r)
			if i+1 < len(rs) && (rs[i+1] == '|' || rs[i+1] == '&') && r != ';' && r != ')' {
				op += string(rs[i+1])
				i++
			}
			words = append(words, op)
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return words
}

// lessonCommandRefs reads the objects one kubectl command names by kind and
// name as separate words (get secret frontend), and those it creates.
func lessonCommandRefs(args []string) (refs, created []lessonObjectRef) {
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			if !strings.Contains(a, "=") && kubectlValueFlags[a] {
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	if len(pos) == 0 {
		return nil, nil
	}
	literal := func(name string) bool {
		return !strings.ContainsAny(name, "$…=/:") && !strings.HasSuffix(name, "-")
	}
	switch verb := pos[0]; verb {
	case "run":
		if len(pos) > 1 && literal(pos[1]) {
			created = append(created, lessonObjectRef{kind: "Pod", name: pos[1]})
		}
	case "expose":
		// expose KIND NAME --name=SERVICE makes a Service named SERVICE,
		// or, without --name, one named like what it exposes.
		name := ""
		for i, a := range args {
			if v, ok := strings.CutPrefix(a, "--name="); ok {
				name = v
			} else if a == "--name" && i+1 < len(args) {
				name = args[i+1]
			}
		}
		if name == "" && len(pos) > 2 {
			name = pos[2]
		} else if name == "" && len(pos) == 2 {
			if _, n, ok := strings.Cut(pos[1], "/"); ok {
				name = n
			}
		}
		if literal(name) {
			created = append(created, lessonObjectRef{kind: "Service", name: name})
		}
	case "create":
		// create KIND NAME, create secret|service TYPE NAME
		if len(pos) > 2 {
			if kind, ok := lessonKinds[pos[1]]; ok {
				name := pos[2]
				if (kind == "Secret" || kind == "Service") && len(pos) > 3 {
					name = pos[3]
				}
				if literal(name) {
					created = append(created, lessonObjectRef{kind: kind, name: name})
				}
			}
		}
	case "get", "describe", "delete", "edit", "label", "annotate", "scale", "patch", "wait":
		if len(pos) < 3 || strings.ContainsAny(pos[1], "/,") {
			return nil, nil // kind/name is read by the text scan; kind lists name nothing
		}
		kind, ok := lessonKinds[strings.ToLower(strings.SplitN(pos[1], ".", 2)[0])]
		if !ok {
			return nil, nil
		}
		for _, name := range pos[2:] {
			if literal(name) {
				refs = append(refs, lessonObjectRef{kind: kind, name: name})
			}
		}
	}
	return refs, created
}

// checkLessonObjects: every kubelab object a lesson names is in objs (the
// minikube overlay's build), made by the cluster, or created by the lesson
// itself. A pod or PersistentVolumeClaim of a StatefulSet is checked
// against the StatefulSet (postgres-0, data-postgres-0).
func checkLessonObjects(files map[string]mdFile, objs []Object) []string {
	have := map[string]bool{}
	for _, o := range objs {
		have[o.Kind+"/"+o.Name] = true
	}
	for _, c := range lessonClusterMade {
		have[c] = true
	}
	for _, o := range objs {
		sts, ok := o.Obj.(*appsv1.StatefulSet)
		if !ok {
			continue
		}
		n := 1
		if sts.Spec.Replicas != nil {
			n = int(*sts.Spec.Replicas)
		}
		for i := range n {
			have[fmt.Sprintf("Pod/%s-%d", o.Name, i)] = true
			for _, tmpl := range sts.Spec.VolumeClaimTemplates {
				have[fmt.Sprintf("PersistentVolumeClaim/%s-%s-%d", tmpl.Name, o.Name, i)] = true
			}
		}
	}
	var bad []string
	for _, p := range slices.Sorted(maps.Keys(files)) {
		if p == "README.md" {
			continue
		}
		refs, created := lessonObjectRefs(files[p])
		for _, r := range refs {
			if key := r.kind + "/" + r.name; !have[key] && !created[key] {
				bad = append(bad, fmt.Sprintf("%s:%d: names %s %s, which the minikube overlay does not have", p, r.line, r.kind, r.name))
			}
		}
	}
	return bad
}

// lessonChecks runs every check on files, against the minikube overlay's
// objects, in the repository at repo.
func lessonChecks(files map[string]mdFile, objs []Object, repo string) []string {
	var bad []string
	bad = append(bad, checkLessonBlocks(files)...)
	bad = append(bad, checkLanguages(files)...)
	bad = append(bad, checkLessonIndex(files)...)
	bad = append(bad, checkLessonLinks(files, repo)...)
	bad = append(bad, checkLessonFiles(files, repo)...)
	bad = append(bad, checkLessonObjects(files, objs)...)
	return bad
}

func minikubeOverlayObjects(t *testing.T) []Object {
	t.Helper()
	return load(t, build{dir: filepath.Join(root, "kustomize/overlays/minikube")})
}

// TestLessons: the lessons are well formed, the same in both languages,
// linked from the index, and name only files, objects and anchors that
// exist.
func TestLessons(t *testing.T) {
	files := readLessons(t)
	for _, p := range lessonChecks(files, minikubeOverlayObjects(t), root) {
		t.Error(p)
	}
	en := lessonsIn(files, "en")
	runs := 0
	for _, f := range en {
		r, _ := lessonBlocks(f)
		runs += len(r)
	}
	t.Logf("%d lessons, %d runnable blocks each in English and Japanese", len(en), runs)
}

// TestLessonChecksCatchBreaks breaks the lessons one way at a time, in
// memory, and expects the matching check to say so.
func TestLessonChecksCatchBreaks(t *testing.T) {
	const en, ja, index = lessonsDir + "/en/04-labels.md", lessonsDir + "/ja/04-labels.md", lessonsDir + "/README.md"
	objs := minikubeOverlayObjects(t)
	edit := func(t *testing.T, files map[string]mdFile, p, old, new string) {
		t.Helper()
		f := files[p]
		if !strings.Contains(f.Text, old) {
			t.Fatalf("%s no longer contains %q: update this break", p, old)
		}
		f.Text = strings.Replace(f.Text, old, new, 1)
		files[p] = f
	}
	tests := []struct {
		name, want string
		breakIt    func(t *testing.T, files map[string]mdFile)
	}{
		{"a Japanese command differs", "runnable block 2 differs", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, ja, "kubectl get pods -n kubelab --show-labels", "kubectl get pods -n kubelab --show-labels -o wide")
		}},
		{"Japanese expected output differs", "differs", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, ja, "pod/frontend-… labeled\n", "pod/frontend-… labelled\n")
		}},
		{"an option only in English", "differs", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, en, "```sh run retry=60s\nkubectl get --raw", "```sh run retry=30s\nkubectl get --raw")
		}},
		{"a runnable block missing in Japanese", "has no Japanese counterpart", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, ja, "```sh run\nkubectl delete pod $pod -n kubelab\n```", "```sh\nkubectl delete pod $pod -n kubelab\n```")
		}},
		{"a lesson only in English", "has no Japanese version", func(_ *testing.T, f map[string]mdFile) {
			delete(f, ja)
		}},
		{"a lesson only in Japanese", "has no English version", func(_ *testing.T, f map[string]mdFile) {
			delete(f, en)
		}},
		{"an unknown option", `unknown option "retries=60s"`, func(t *testing.T, f map[string]mdFile) {
			edit(t, f, en, "```sh run retry=60s\nkubectl get --raw", "```sh run retries=60s\nkubectl get --raw")
		}},
		{"a bad duration", "is not a positive duration", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, en, "```sh run retry=60s\nkubectl get --raw", "```sh run retry=soon\nkubectl get --raw")
		}},
		{"a misspelt marker", `info string "bash run"`, func(t *testing.T, f map[string]mdFile) {
			edit(t, f, en, "```sh run\nkubectl get pods -n kubelab --show-labels", "```bash run\nkubectl get pods -n kubelab --show-labels")
		}},
		{"expected output after a plain block", "an expect block must directly follow a runnable block", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, en, "8080:8080\n```\n", "8080:8080\n```\n\n```text expect\nForwarding from 127.0.0.1:8080 -> 8080\n```\n")
		}},
		{"a lesson file misnamed", "is named NN-slug.md", func(_ *testing.T, f map[string]mdFile) {
			for _, p := range []string{en, ja} {
				g := f[p]
				g.Path = strings.Replace(p, "04-labels", "4-labels", 1)
				delete(f, p)
				f[g.Path] = g
			}
		}},
		{"a file that does not exist", "names manifests/frontend/deploymnt.yaml, which does not exist", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, en, "`manifests/frontend/service.yaml`", "`manifests/frontend/deploymnt.yaml`")
		}},
		{"a path in a command", "names kustomize/overlays/minikub, which does not exist", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, en, "```sh run\nmake deploy-minikube\n```", "```sh run\nkubectl apply -k kustomize/overlays/minikub\n```")
		}},
		{"kind/name", "names Deployment frontnd", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, en, "kubectl rollout history deployment/frontend", "kubectl rollout history deployment/frontnd")
		}},
		{"kind/name with its group", "names Secret frontnd", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, lessonsDir+"/en/01-getting-started.md", "secret/frontend   Opaque", "secret/frontnd   Opaque")
		}},
		{"Kind `name` in prose", "names Service frontnd", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, en, "the Service `frontend`", "the Service `frontnd`")
		}},
		{"kubectl KIND NAME", "names Service frontnd", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, en, "kubectl get service frontend -n kubelab", "kubectl get service frontnd -n kubelab")
		}},
		{"a StatefulSet's pod beyond its replicas", "names Pod postgres-1", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, lessonsDir+"/en/01-getting-started.md", "pod/postgres-0", "pod/postgres-1")
		}},
		{"a broken link", "link ../ja/99-nope.md does not resolve", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, en, "](../ja/04-labels.md)", "](../ja/99-nope.md)")
		}},
		{"a link out of the repository", "leaves the repository", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, en, "](../README.md)", "](../../../../shared/STYLE.md)")
		}},
		{"a broken anchor", "has no heading with that anchor", func(t *testing.T, f map[string]mdFile) {
			edit(t, f, en, "([lesson 1](01-getting-started.md))", "([lesson 1](01-getting-started.md#no-such-heading))")
		}},
		{"a lesson missing from the index", "does not link " + ja, func(t *testing.T, f map[string]mdFile) {
			edit(t, f, index, "[ラベル、セレクター、アノテーション](ja/04-labels.md)", "ラベル、セレクター、アノテーション")
		}},
		{"README without the course", "README.md does not link the lessons", func(_ *testing.T, f map[string]mdFile) {
			f["README.md"] = mdFile{"README.md", "# kubelab\n"}
		}},
	}
	if problems := lessonChecks(readLessons(t), objs, root); len(problems) != 0 {
		t.Fatalf("the intact lessons already fail: %v", problems)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := readLessons(t)
			tt.breakIt(t, files)
			problems := lessonChecks(files, objs, root)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Fatalf("the checks did not catch it; they said %q", problems)
			}
		})
	}
}

// TestLessonAnchors pins GitHub's anchors for the heading forms the
// lessons use, Japanese included.
func TestLessonAnchors(t *testing.T) {
	text := "# 1. Getting started\n## Break it\n```sh\n# not a heading\n```\n## Break it\n### コンテキストとデフォルトの Namespace\n## `make deploy-minikube`, again\n"
	want := []string{"1-getting-started", "break-it", "break-it-1", "コンテキストとデフォルトの-namespace", "make-deploy-minikube-again"}
	if got := mdAnchors(text); !slices.Equal(got, want) {
		t.Errorf("anchors = %q, want %q", got, want)
	}
}

// TestLessonCommandParsing pins how commands are read for the object
// check.
func TestLessonCommandParsing(t *testing.T) {
	f := mdFile{"x.md", "```sh run\n" +
		"pod=$(kubectl get pods -n kubelab -l app=x -o jsonpath='{.items[0].metadata.name}')\n" +
		"kubectl -n kubelab get secret frontend -o jsonpath='{.data.admin-token}' | base64 -d\n" +
		"kubectl label pod $pod -n kubelab lesson=labels && kubectl describe deployment imageproc -n kubelab\n" +
		"kubectl get deployment coredns -n kube-system\n" +
		"kubectl -n kubelab create configmap lesson-notes --from-literal=a=b\n" +
		"kubectl get configmap lesson-notes -n kubelab\n" +
		"kubectl create job check-now --from=cronjob/frontend-check -n lesson-jobs\n" +
		"kubectl create service externalname database -n lesson-x --external-name=postgres.kubelab.svc.cluster.local\n" +
		"kubectl expose deployment web -n lesson-x --port=80 && kubectl expose deployment/api -n lesson-x --name=api-svc\n" +
		"kubectl create -n kubelab -f - <<'EOF'\napiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    a: b\n  name: lesson-pod\nspec:\n  containers:\n    - name: c\n---\nkind: Service\nmetadata:\n  name: lesson-svc\nEOF\n" +
		"```\nSee deployment.apps/frontend, services/frontend/internal/pod, ReplicaSet/frontend-…, and the Secret `postgres`.\n"}
	refs, created := lessonObjectRefs(f)
	var got []string
	for _, r := range refs {
		got = append(got, fmt.Sprintf("%d %s/%s", r.line, r.kind, r.name))
	}
	want := []string{"27 Deployment/frontend", "27 Secret/postgres", "3 Secret/frontend", "4 Deployment/imageproc", "7 ConfigMap/lesson-notes"}
	if !slices.Equal(got, want) {
		t.Errorf("refs = %q, want %q", got, want)
	}
	if !created["ConfigMap/lesson-notes"] || !created["Pod/lesson-pod"] || !created["Service/lesson-svc"] || !created["Job/check-now"] ||
		!created["Service/database"] || !created["Service/web"] || !created["Service/api-svc"] || len(created) != 7 {
		t.Errorf("created = %v, want ConfigMap/lesson-notes, Job/check-now, Pod/lesson-pod and Services lesson-svc, database, web and api-svc", created)
	}
}
