package web

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubelab/kubelab/services/frontend/internal/locale"
)

// TestLessonFilesExist: every lesson the UI links to is in the course, in
// both languages.
func TestLessonFilesExist(t *testing.T) {
	for topic, file := range lessonFiles {
		for _, lang := range []string{"en", "ja"} {
			p := filepath.Join("..", "..", "..", "..", "docs", "lessons", lang, file+".md")
			if _, err := os.Stat(p); err != nil {
				t.Errorf("topic %q links to %s, which is not there: %v", topic, p, err)
			}
		}
	}
}

func TestLessonsInTheReadersLanguage(t *testing.T) {
	const base = "https://example.test/lessons/"
	catalog, err := locale.Load()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		lang, href, title string
	}{
		{"en", base + "en/12-probes.md", "lesson 12"},
		{"ja", base + "ja/12-probes.md", "レッスン12"},
	}
	for _, tt := range tests {
		l, err := lessonsFor(base, catalog.Printer(tt.lang)).For("probes")
		if err != nil || l == nil || l.Href != tt.href || l.Title != tt.title {
			t.Errorf("%s: got %+v, %v; want %s %q", tt.lang, l, err, tt.href, tt.title)
		}
	}
	if l, err := lessonsFor("", catalog.English()).For("probes"); l != nil || err != nil {
		t.Errorf("no LESSONS_URL: got %+v, %v; want no link", l, err)
	}
	if _, err := lessonsFor(base, catalog.English()).For("probs"); err == nil || !strings.Contains(err.Error(), "probs") {
		t.Errorf("unknown topic: err = %v, want one naming it", err)
	}
}
