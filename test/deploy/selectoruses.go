package deploy

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// SelectorUse is a label selector that a reader or a test hands to
// kubectl (-l, --selector), and where it is written.
type SelectorUse struct {
	Where, Selector string
	// Computed is set where the selector is built at run time (a variable
	// in it), so it cannot be checked here.
	Computed bool
}

// SelectorUses collects the selectors of the commands kubelab tells people
// to run and runs itself: README.md, docs/**/*.md, the Makefile, the
// comments of manifests/ and kustomize/, and the e2e tests' kubectl calls
// and diagnostics.
func SelectorUses(root string) ([]SelectorUse, error) {
	var files []string
	for _, dir := range []string{"docs", "manifests", "kustomize"} {
		top, err := filepath.EvalSymlinks(filepath.Join(root, dir))
		if err != nil {
			return nil, err
		}
		err = filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".md") || strings.HasSuffix(path, ".yaml")) {
				rel, _ := filepath.Rel(top, path)
				files = append(files, filepath.Join(dir, rel))
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	files = append(files, "README.md", "Makefile")
	var uses []SelectorUse
	for _, f := range files {
		more, err := TextSelectorUses(filepath.Join(root, f), f)
		if err != nil {
			return nil, err
		}
		uses = append(uses, more...)
	}
	more, err := GoSelectorUses(filepath.Join(root, "test/e2e"), root)
	return append(uses, more...), err
}

var (
	// -l sel, -l=sel, --selector sel, --selector=sel; sel quoted or a word.
	selectorFlag = regexp.MustCompile("(?:^|[\\s\"'(`])(?:-l|--selector)(?:=|\\s+)(\"[^\"]*\"|'[^']*'|[^\\s\"'`|;]+)")
	// A namespace other than kubelab's: those pods are not in the builds.
	otherNamespace = regexp.MustCompile(`(?:\s-n|--namespace)[= ]+([a-z0-9-]+)|\s(?:-A|--all-namespaces)\b`)
)

// TextSelectorUses finds the selectors of kubectl commands in a text file
// (documentation, a Makefile, YAML comments), one command per line; name
// is how the uses refer to the file.
func TextSelectorUses(path, name string) ([]SelectorUse, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var uses []SelectorUse
	for i, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(strings.ToLower(line), "kubectl") {
			continue
		}
		if m := otherNamespace.FindStringSubmatch(line); m != nil && m[1] != "kubelab" {
			continue
		}
		for _, m := range selectorFlag.FindAllStringSubmatch(line, -1) {
			sel := strings.Trim(m[1], `"'`)
			if strings.Count(sel, ")") > strings.Count(sel, "(") {
				sel = strings.TrimSuffix(sel, ")") // (kubectl ... -l app=x)
			}
			uses = append(uses, SelectorUse{Where: fmt.Sprintf("%s:%d", name, i+1), Selector: sel, Computed: strings.Contains(sel, "$")})
		}
	}
	return uses, nil
}

// GoSelectorUses finds the selectors the Go files of dir pass to kubectl:
// a string after "-l" or "--selector" in any argument or slice literal,
// and every argument a helper passes on to one (diagnose(t, sel...),
// rollout(t, kind, name, sel), ...). Helpers are found, not listed: a
// parameter that reaches "-l", directly or through another helper, makes
// its function a selector helper.
func GoSelectorUses(dir, root string) ([]SelectorUse, error) {
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var files []*ast.File
	for _, p := range paths {
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	// helpers: function name -> index of each selector parameter; an index
	// at or past variadic[name] stands for every argument from there on.
	helpers := map[string]map[int]bool{}
	variadic := map[string]int{}
	selectorArgs := func(call string, list []ast.Expr) []ast.Expr {
		var out []ast.Expr
		for i, e := range list {
			if s, ok := stringLit(e); ok {
				if (s == "-l" || s == "--selector") && i+1 < len(list) {
					out = append(out, list[i+1])
				} else if v, ok := strings.CutPrefix(s, "--selector="); ok {
					out = append(out, &ast.BasicLit{ValuePos: e.Pos(), Kind: token.STRING, Value: strconv.Quote(v)})
				}
			}
		}
		for idx := range helpers[call] {
			if v, ok := variadic[call]; ok && idx >= v {
				if idx < len(list) {
					out = append(out, list[idx:]...)
				}
			} else if idx < len(list) {
				out = append(out, list[idx])
			}
		}
		return out
	}
	for changed := true; changed; {
		changed = false
		for _, f := range files {
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Body == nil {
					continue
				}
				params := map[string]int{}
				n := 0
				for _, field := range fd.Type.Params.List {
					for _, name := range field.Names {
						params[name.Name] = n
						n++
					}
					if _, ok := field.Type.(*ast.Ellipsis); ok {
						variadic[fd.Name.Name] = n - 1
					}
				}
				mark := func(e ast.Expr) {
					id, ok := e.(*ast.Ident)
					if !ok {
						return
					}
					if idx, ok := params[id.Name]; ok && !helpers[fd.Name.Name][idx] {
						if helpers[fd.Name.Name] == nil {
							helpers[fd.Name.Name] = map[int]bool{}
						}
						helpers[fd.Name.Name][idx] = true
						changed = true
					}
				}
				ast.Inspect(fd.Body, func(node ast.Node) bool {
					switch v := node.(type) {
					case *ast.RangeStmt: // for _, sel := range selectors
						if x, ok := v.X.(*ast.Ident); ok {
							if idx, ok := params[x.Name]; ok {
								if id, ok := v.Value.(*ast.Ident); ok {
									params[id.Name] = idx
								}
							}
						}
					case *ast.CallExpr:
						for _, e := range selectorArgs(callName(v), v.Args) {
							mark(e)
						}
					case *ast.CompositeLit:
						for _, e := range selectorArgs("", v.Elts) {
							mark(e)
						}
					}
					return true
				})
			}
		}
	}
	var uses []SelectorUse
	for _, f := range files {
		ast.Inspect(f, func(node ast.Node) bool {
			var found []ast.Expr
			switch v := node.(type) {
			case *ast.CallExpr:
				found = selectorArgs(callName(v), v.Args)
			case *ast.CompositeLit:
				found = selectorArgs("", v.Elts)
			}
			for _, e := range found {
				pos := fset.Position(e.Pos())
				rel, _ := filepath.Rel(root, pos.Filename)
				where := fmt.Sprintf("%s:%d", rel, pos.Line)
				if s, ok := stringLit(e); ok {
					uses = append(uses, SelectorUse{Where: where, Selector: s})
				} else if _, param := e.(*ast.Ident); !param {
					uses = append(uses, SelectorUse{Where: where, Selector: exprText(fset, e), Computed: true})
				}
			}
			return true
		})
	}
	return uses, nil
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

func callName(call *ast.CallExpr) string {
	if id, ok := call.Fun.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

func exprText(fset *token.FileSet, e ast.Expr) string {
	start, end := fset.Position(e.Pos()), fset.Position(e.End())
	data, err := os.ReadFile(start.Filename)
	if err != nil || end.Offset > len(data) {
		return "?"
	}
	return string(data[start.Offset:end.Offset])
}

// CheckSelectorUses: each selector must parse as kubectl parses it and
// select at least one pod template of objs; one that selects nothing makes
// a lesson's command, or a failed test's diagnostics, print nothing.
func CheckSelectorUses(objs []Object, uses []SelectorUse) []string {
	var bad []string
	for _, u := range uses {
		if u.Computed {
			continue
		}
		sel, err := labels.Parse(u.Selector)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: -l %q is not a valid selector: %v", u.Where, u.Selector, err))
			continue
		}
		// The EndpointSlice controller labels each slice with its
		// Service's name: that selector lists slices, and needs the Service.
		if reqs, _ := sel.Requirements(); len(reqs) == 1 && reqs[0].Key() == discoveryv1.LabelServiceName {
			if name, ok := reqs[0].Values().PopAny(); ok {
				if _, found := find[*corev1.Service](objs, name); found {
					continue
				}
			}
		}
		matched := false
		for _, p := range Pods(objs) {
			if sel.Matches(labels.Set(p.Meta.Labels)) {
				matched = true
				break
			}
		}
		if !matched {
			bad = append(bad, fmt.Sprintf("%s: -l %s matches no pod template, so the command lists no pods", u.Where, u.Selector))
		}
	}
	return bad
}
