package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/text/language"
)

// lessonFiles names, for each thing the UI shows, the lesson of the
// course (docs/lessons) that teaches it. TestLessonFilesExist checks that
// each is there in both languages, so a renamed lesson breaks a test, not
// a learner's link.
var lessonFiles = map[string]string{
	"cluster":     "02-cluster",
	"pods":        "03-pods",
	"labels":      "04-labels",
	"replicasets": "05-replicasets",
	"deployments": "06-deployments",
	"services":    "07-services",
	"configmaps":  "09-configmaps",
	"secrets":     "10-secrets",
	"probes":      "12-probes",
	"namespaces":  "18-security",
}

// lessonLanguages are the course's languages, English first: it is what
// a browser that asks for neither gets.
var lessonLanguages = language.NewMatcher([]language.Tag{language.English, language.Japanese})

// Lessons links the UI to the course, in the reader's language.
type Lessons struct {
	// base is where the course is published (LESSONS_URL); empty, the UI
	// shows no links.
	base, lang string
}

// Lesson is one link to the course.
type Lesson struct {
	Href  string
	Title string
}

// lessonsFor picks the course language r's Accept-Language prefers.
func lessonsFor(base string, r *http.Request) Lessons {
	tag, _ := language.MatchStrings(lessonLanguages, r.Header.Get("Accept-Language"))
	lang, _ := tag.Base()
	return Lessons{base: strings.TrimSuffix(base, "/"), lang: lang.String()}
}

// For returns the link to the lesson on topic, or nothing when the course
// is not linked; a topic without a lesson is a template bug, and fails
// the render.
func (l Lessons) For(topic string) (*Lesson, error) {
	file, ok := lessonFiles[topic]
	if !ok {
		return nil, fmt.Errorf("no lesson on %q", topic)
	}
	if l.base == "" {
		return nil, nil
	}
	n, _ := strconv.Atoi(file[:2])
	title := fmt.Sprintf("lesson %d", n)
	if l.lang == "ja" {
		title = fmt.Sprintf("レッスン%d", n)
	}
	return &Lesson{Href: l.base + "/" + l.lang + "/" + file + ".md", Title: title}, nil
}
