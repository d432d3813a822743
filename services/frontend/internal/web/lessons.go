package web

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kubelab/kubelab/services/frontend/internal/locale"
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

// Lessons links the UI to the course, in the reader's language.
type Lessons struct {
	// base is where the course is published (LESSONS_URL); empty, the UI
	// shows no links.
	base string
	p    *locale.Printer
}

// Lesson is one link to the course.
type Lesson struct {
	Href  string
	Title string
}

// lessonsFor links to the course at base in p's language.
func lessonsFor(base string, p *locale.Printer) Lessons {
	return Lessons{base: strings.TrimSuffix(base, "/"), p: p}
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
	title, err := l.p.T("lesson.link", "N", n)
	if err != nil {
		return nil, err
	}
	return &Lesson{Href: l.base + "/" + l.p.Lang + "/" + file + ".md", Title: title}, nil
}
