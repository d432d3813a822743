// Package proto_test checks the API definition: buf lint passes and the
// committed generated code is exactly what `make proto` would produce, so a
// .proto edit without regeneration fails the build.
package proto_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := name + " not found on PATH; run `make tools`"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

func TestBufLint(t *testing.T) {
	buf := tool(t, "buf")
	if out, err := exec.Command(buf, "lint").CombinedOutput(); err != nil {
		t.Fatalf("buf lint: %v\n%s", err, out)
	}
}

func TestGeneratedCodeIsCurrent(t *testing.T) {
	buf := tool(t, "buf")
	tool(t, "protoc-gen-go")
	tool(t, "protoc-gen-go-grpc")
	out := t.TempDir()
	if b, err := exec.Command(buf, "generate", "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("buf generate: %v\n%s", err, b)
	}
	fresh := map[string][]byte{}
	_ = filepath.WalkDir(filepath.Join(out, "gen"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(out, p)
			fresh[rel], _ = os.ReadFile(p)
		}
		return err
	})
	committed := 0
	_ = filepath.WalkDir("gen", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		committed++
		got, _ := os.ReadFile(p)
		if want, ok := fresh[p]; !ok {
			t.Errorf("%s is committed but no longer generated", p)
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what `make proto` generates; run it and commit", p)
		}
		return nil
	})
	if committed != len(fresh) {
		t.Errorf("%d generated files, %d committed; run `make proto`", len(fresh), committed)
	}
}
