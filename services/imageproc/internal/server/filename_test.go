package server

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestCleanFilename(t *testing.T) {
	tests := map[string]string{
		"holiday.jpg":            "holiday.jpg",
		"../../etc/passwd":       "passwd",
		`C:\Users\me\cat.png`:    "cat.png",
		"evil\x00name\r\n.jpg":   "evilname.jpg",
		`say "cheese".jpg`:       "say cheese.jpg",
		"":                       "upload",
		"/":                      "upload",
		"   ":                    "upload",
		strings.Repeat("a", 300): strings.Repeat("a", 200),
		"фото.jpg":               "фото.jpg",
	}
	for in, want := range tests {
		if got := cleanFilename(in); got != want {
			t.Errorf("cleanFilename(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzCleanFilename: whatever a client sends as a filename, what is stored
// is a short base name with no path separator or control character.
func FuzzCleanFilename(f *testing.F) {
	for _, s := range []string{"a.jpg", "../x", "a\\b", "\x00", "..", "é/ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := cleanFilename(in)
		if out == "" || len(out) > 200 || !utf8.ValidString(out) || strings.ContainsAny(out, "/\\\"") || out == ".." {
			t.Fatalf("cleanFilename(%q) = %q", in, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) {
				t.Fatalf("control character in %q", out)
			}
		}
	})
}
