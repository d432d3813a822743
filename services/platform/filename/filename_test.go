package filename

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes
	for _, tt := range []struct{ name, in, want string }{
		{"plain", "harbour.jpg", "harbour.jpg"},
		{"right-to-left override", "photo\u202Egnp.exe", "photognp.exe"},
		{"every bidi control", "a\u202Ab\u202Bc\u202Cd\u202De\u202Ef\u2066g\u2067h\u2068i\u2069j\u200Ek\u200Fl\u061Cm.png", "abcdefghijklm.png"},
		{"zero-width and other invisible format characters", "pho\u200Bto\u2060\u00AD\uFEFF.jpg", "photo.jpg"},
		{"tag characters", "cat\U000E0041\U000E0042.gif", "cat.gif"},
		{"controls", "a\x00b\tc\nd\x1b[31me\x7f\u0085.jpg", "abcd[31me.jpg"},
		{"line and paragraph separators", "one\u2028two\u2029.jpg", "onetwo.jpg"},
		{"joiners kept", "\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645 \U0001F469\u200D\U0001F4BB.jpg", "\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645 \U0001F469\u200D\U0001F4BB.jpg"},
		{"quote", `say "cheese".jpg`, "say cheese.jpg"},
		{"windows path", `C:\Users\ann\Pictures\harbour.jpg`, "harbour.jpg"},
		{"unix path", "../../etc/passwd", "passwd"},
		{"not UTF-8", "caf\xe9.jpg", "caf\uFFFD.jpg"},
		{"surrounding spaces", "  harbour.jpg \u3000", "harbour.jpg"},
		{"only invisible", "\u202E\u200B", Fallback},
		{"dot dot", "..", Fallback},
		{"slash", "/", Fallback},
		{"empty", "", Fallback},
		{"long, cut on a rune boundary, extension kept", long + ".jpeg", strings.Repeat("é", 97) + ".jpeg"},
		{"long extension not kept", "a." + long, "a." + strings.Repeat("é", 99)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Clean(tt.in); got != tt.want {
				t.Errorf("Clean(%+q) = %+q, want %+q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzClean checks what every cleaned name promises, whatever came in.
func FuzzClean(f *testing.F) {
	for _, s := range []string{"photo\u202Egnp.exe", `C:\x\y.jpg`, "a/b/", "\xff\xfe", strings.Repeat("\u202E", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := Clean(in)
		if got == "" || len(got) > MaxBytes || !utf8.ValidString(got) || strings.ContainsAny(got, `/\"`) {
			t.Fatalf("Clean(%+q) = %+q", in, got)
		}
		for _, r := range got {
			if hidden(r) {
				t.Fatalf("Clean(%+q) = %+q keeps %U", in, got, r)
			}
		}
		if again := Clean(got); again != got {
			t.Fatalf("not idempotent: %+q, then %+q", got, again)
		}
	})
}
