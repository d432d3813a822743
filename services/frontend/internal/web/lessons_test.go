package web

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

func TestLessonsFollowAcceptLanguage(t *testing.T) {
	const base = "https://example.test/lessons/"
	tests := []struct {
		accept, href, title string
	}{
		{"", base + "en/12-probes.md", "lesson 12"},
		{"ja", base + "ja/12-probes.md", "レッスン12"},
		{"ja-JP,ja;q=0.9,en;q=0.8", base + "ja/12-probes.md", "レッスン12"},
		{"en-GB,en;q=0.9,ja;q=0.5", base + "en/12-probes.md", "lesson 12"},
		{"fr-FR,fr;q=0.9", base + "en/12-probes.md", "lesson 12"},
		{"de;q=0.9,ja;q=0.2", base + "ja/12-probes.md", "レッスン12"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tt.accept != "" {
			r.Header.Set("Accept-Language", tt.accept)
		}
		l, err := lessonsFor(base, r).For("probes")
		if err != nil || l == nil || l.Href != tt.href || l.Title != tt.title {
			t.Errorf("Accept-Language %q: got %+v, %v; want %s %q", tt.accept, l, err, tt.href, tt.title)
		}
	}
	if l, err := lessonsFor("", httptest.NewRequest(http.MethodGet, "/", nil)).For("probes"); l != nil || err != nil {
		t.Errorf("no LESSONS_URL: got %+v, %v; want no link", l, err)
	}
	if _, err := lessonsFor(base, httptest.NewRequest(http.MethodGet, "/", nil)).For("probs"); err == nil || !strings.Contains(err.Error(), "probs") {
		t.Errorf("unknown topic: err = %v, want one naming it", err)
	}
}
