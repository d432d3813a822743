// Package filename makes the name of an uploaded file safe to show. The
// name a client sends is a label for people (pages, the API, logs), never a
// path, and it must not be able to disguise itself: with U+202E (right-to-
// left override) inside it, "photo\u202Egnp.exe" shows as "photoexe.png".
//
// Every service that accepts a name cleans it on the way in, and pages
// clean it again on the way out, for names stored before a rule was added.
package filename

import (
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxBytes bounds the length of a cleaned name.
const MaxBytes = 200

// Fallback names an upload whose name cleans to nothing.
const Fallback = "upload"

// maxKeptExt: a name cut to MaxBytes keeps an extension up to this long,
// so "…long name….jpg" still says what it is.
const maxKeptExt = 16

// Clean returns the last element of name (a browser on Windows may send
// C:\Users\…\photo.jpg), without the characters that hide or reorder text,
// trimmed of surrounding spaces, at most MaxBytes long, or Fallback.
//
// It removes:
//   - control characters (Cc): C0, DEL and C1, among them newlines, tabs
//     and terminal escapes, which a log or a header would take literally;
//   - format characters (Cf), all invisible: the bidirectional controls
//     (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C), which reorder
//     what follows them, and the zero-width space, word joiner, soft hyphen,
//     byte order mark and tag characters, which make two names look alike
//     or carry hidden text. Kept: the zero-width non-joiner and joiner
//     (U+200C, U+200D), which reorder nothing and which Persian and Indic
//     spelling and emoji sequences need;
//   - line and paragraph separators (U+2028, U+2029), which break the line
//     a name is shown on;
//   - the double quote, which would end a quoted header parameter
//     (Content-Disposition: attachment; filename="…").
//
// Bytes that are not UTF-8 become U+FFFD, visibly (protobuf strings must be
// UTF-8, and a name should not hide that it lost something).
func Clean(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	name = strings.Map(func(r rune) rune {
		if hidden(r) || r == '"' {
			return -1
		}
		return r
	}, name)
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.TrimSpace(cut(name))
	if name == "" || name == "." || name == ".." || name == "/" {
		return Fallback
	}
	return name
}

// hidden reports whether r is invisible or reorders the text around it.
func hidden(r rune) bool {
	switch {
	case r == '\u200C' || r == '\u200D':
		return false
	case unicode.IsControl(r), unicode.Is(unicode.Cf, r):
		return true
	}
	return r == '\u2028' || r == '\u2029'
}

// cut shortens name to MaxBytes on a rune boundary, keeping a short
// extension.
func cut(name string) string {
	if len(name) <= MaxBytes {
		return name
	}
	ext := path.Ext(name)
	if len(ext) > maxKeptExt {
		ext = ""
	}
	stem := name[:MaxBytes-len(ext)]
	for stem != "" && !utf8.ValidString(stem) {
		stem = stem[:len(stem)-1]
	}
	return stem + ext
}
