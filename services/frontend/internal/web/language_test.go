package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kubelab/kubelab/services/frontend/internal/locale"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// TestEveryPageInBothLanguages renders each page for a Japanese and an
// English reader: the page says which language it is in, speaks it, and
// shows no message key or unfilled value.
func TestEveryPageInBothLanguages(t *testing.T) {
	h := newHarness(t)
	body, ct := form(t, "file", "山.jpg", pipelinetest.JPEG(64, 48, 1))
	resp, created := h.do(t, http.MethodPost, "/api/v1/images", body, "Content-Type", ct)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, created)
	}
	var up struct{ Image struct{ ID string } }
	if err := json.Unmarshal([]byte(created), &up); err != nil || up.Image.ID == "" {
		t.Fatalf("upload answer %s: %v", created, err)
	}
	resp, batch := h.do(t, http.MethodPost, "/api/v1/batches", strings.NewReader(`{"operations":[{"thumbnail":{"size":64}}]}`),
		"Content-Type", "application/json")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("batch: %d %s", resp.StatusCode, batch)
	}
	var b struct{ Batch struct{ ID string } }
	_ = json.Unmarshal([]byte(batch), &b)

	pages := []struct {
		path     string
		status   int
		en, ja   string // a phrase only that language's page has
		language string // Accept-Language
	}{
		{"/", http.StatusOK, "Reprocess every photo as a batch job", "すべての写真をバッチジョブで再処理", ""},
		{"/images/" + up.Image.ID, http.StatusOK, "Make a variant", "バリアントを作る", ""},
		{"/batches/" + b.Batch.ID, http.StatusOK, "In progress", "処理中", ""},
		{"/admin", http.StatusOK, "Admin token", "管理トークン", ""},
		{"/no/such/page", http.StatusNotFound, "no page at /no/such/page", "/no/such/page にはページがありません", ""},
		{"/images/nope", http.StatusNotFound, ">not found<", ">見つかりません<", ""},
	}
	leftover := regexp.MustCompile(`<no value>|%!|\b(nav|gallery|panel|admin|batch|detail|error|problem|unit|format)\.[a-z-]+\b`)
	for _, pg := range pages {
		for _, lang := range []string{"en", "ja"} {
			resp, page := h.do(t, http.MethodGet, pg.path, nil, "Accept", "text/html", "Accept-Language", lang)
			if resp.StatusCode != pg.status {
				t.Errorf("%s in %s: %d, want %d", pg.path, lang, resp.StatusCode, pg.status)
				continue
			}
			want, other := pg.en, pg.ja
			if lang == "ja" {
				want, other = pg.ja, pg.en
			}
			if !strings.Contains(page, want) || strings.Contains(page, other) {
				t.Errorf("%s in %s: want %q and not %q in the page", pg.path, lang, want, other)
			}
			if !strings.Contains(page, `<html lang="`+lang+`">`) || resp.Header.Get("Content-Language") != lang {
				t.Errorf("%s in %s: html lang or Content-Language %q is not %s", pg.path, lang, resp.Header.Get("Content-Language"), lang)
			}
			if m := leftover.FindString(page); m != "" {
				t.Errorf("%s in %s shows %q", pg.path, lang, m)
			}
		}
	}
}

// TestLanguageSwitchSticks: the switch sets a cookie that wins over the
// browser's Accept-Language, and goes back only to a page of this site.
func TestLanguageSwitchSticks(t *testing.T) {
	h := newHarness(t)
	resp, page := h.do(t, http.MethodGet, "/admin?x=1", nil, "Accept-Language", "en-US")
	if !strings.Contains(page, `name="return" value="/admin?x=1"`) || !strings.Contains(page, `value="ja" lang="ja">日本語</button>`) {
		t.Fatalf("the switch on /admin does not come back to it in Japanese: %s", page)
	}
	tests := []struct {
		lang, back, location string
		status               int
	}{
		{"ja", "/admin?x=1", "/admin?x=1", http.StatusSeeOther},
		{"en", "/", "/", http.StatusSeeOther},
		{"ja", "//evil.test/", "/", http.StatusSeeOther},
		{"ja", `/\evil.test`, "/", http.StatusSeeOther},
		{"ja", "/\t/evil.test", "/", http.StatusSeeOther},
		{"ja", "/\n/evil.test", "/", http.StatusSeeOther},
		{"ja", "https://evil.test/", "/", http.StatusSeeOther},
		{"fr", "/", "", http.StatusBadRequest},
	}
	for _, tt := range tests {
		form := url.Values{"lang": {tt.lang}, "return": {tt.back}}.Encode()
		resp, body := h.do(t, http.MethodPost, "/lang", strings.NewReader(form), "Content-Type", "application/x-www-form-urlencoded")
		if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location {
			t.Errorf("switch to %s, back to %q: %d to %q, want %d to %q (%s)", tt.lang, tt.back, resp.StatusCode,
				resp.Header.Get("Location"), tt.status, tt.location, body)
			continue
		}
		if tt.status != http.StatusSeeOther {
			continue
		}
		var c *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == locale.Cookie {
				c = ck
			}
		}
		if c == nil || c.Value != tt.lang || c.Path != "/" || c.MaxAge < 300*24*60*60 || !c.HttpOnly {
			t.Fatalf("switch to %s set the cookie %+v", tt.lang, c)
		}
		// The cookie wins over a browser asking for the other language.
		other := map[string]string{"ja": "en", "en": "ja"}[tt.lang]
		_, page := h.do(t, http.MethodGet, "/", nil, "Accept-Language", other, "Cookie", c.Name+"="+c.Value)
		if !strings.Contains(page, `<html lang="`+tt.lang+`">`) {
			t.Errorf("with the cookie %s and Accept-Language %s the page is not in %s", tt.lang, other, tt.lang)
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin page: %d", resp.StatusCode)
	}
}

// TestProblemsStayEnglishWithAStableType: problem JSON is for programs,
// whatever language the caller's browser prefers.
func TestProblemsStayEnglishWithAStableType(t *testing.T) {
	h := newHarness(t)
	resp, body := h.do(t, http.MethodGet, "/api/v1/images/nope", nil, "Accept-Language", "ja", "Cookie", locale.Cookie+"=ja")
	var p problem
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if resp.StatusCode != http.StatusNotFound || p.Type != problemTypes+"#not-found" || p.Title != "not found" || p.Detail == "" ||
		strings.ContainsFunc(p.Detail, func(r rune) bool { return r >= 0x3000 }) {
		t.Fatalf("a Japanese reader's API problem: %d %+v", resp.StatusCode, p)
	}
}

// TestProblemTypesAreDocumented: every type the frontend answers with is
// in docs/problems.md and has a title in both catalogues (the catalogue
// test checks the second language).
func TestProblemTypesAreDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "docs", "problems.md"))
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := locale.Load()
	if err != nil {
		t.Fatal(err)
	}
	src, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	typeInCode := regexp.MustCompile(`(?:problemOf\([^,]+, |Type: |\{http\.Status\w+, )"([a-z-]+)"`)
	for _, f := range src {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range typeInCode.FindAllStringSubmatch(string(b), -1) {
			types[m[1]] = true
		}
	}
	types["bad-request"] = true // badRequest's
	if len(types) < 15 {
		t.Fatalf("found only the problem types %v in the code", types)
	}
	for typ := range types {
		if !strings.Contains(string(doc), "\n## "+typ+"\n") {
			t.Errorf("problem type %q has no section in docs/problems.md", typ)
		}
		if _, err := catalog.English().T("problem." + typ); err != nil {
			t.Errorf("problem type %q: %v", typ, err)
		}
	}
}
