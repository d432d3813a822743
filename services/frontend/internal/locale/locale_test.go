package locale

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// messages reads a catalogue as go-i18n does: nested tables join their
// keys with dots, and a table of plural forms is one message.
func messages(t *testing.T, lang string) map[string][]string {
	t.Helper()
	var tree map[string]any
	if _, err := toml.DecodeFS(catalogs, "catalog/"+lang+".toml", &tree); err != nil {
		t.Fatalf("decode the %s catalogue: %v", lang, err)
	}
	out := map[string][]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case string:
			out[prefix] = []string{v}
		case map[string]any:
			if _, plural := v["other"]; plural {
				for _, form := range slices.Sorted(maps.Keys(v)) {
					out[prefix] = append(out[prefix], v[form].(string))
				}
				return
			}
			for k, child := range v {
				walk(strings.TrimPrefix(prefix+"."+k, "."), child)
			}
		default:
			t.Errorf("%s catalogue: %s is a %T, want text or a table", lang, prefix, v)
		}
	}
	walk("", tree)
	return out
}

var (
	placeholder = regexp.MustCompile(`{{\s*\.(\w+)\s*}}`)
	tag         = regexp.MustCompile(`</?[a-z]+>`)
)

// sorted lists what re finds in every form of a message, once each.
func sorted(re *regexp.Regexp, forms []string) []string {
	var found []string
	for _, f := range forms {
		for _, m := range re.FindAllStringSubmatch(f, -1) {
			found = append(found, m[len(m)-1])
		}
	}
	slices.Sort(found)
	return slices.Compact(found)
}

// TestCataloguesHaveTheSameMessages: every message is in both languages,
// with the same data and the same markup, so neither language shows a
// key, loses a value or breaks a page's HTML.
func TestCataloguesHaveTheSameMessages(t *testing.T) {
	en, ja := messages(t, "en"), messages(t, "ja")
	if len(en) < 150 {
		t.Fatalf("the English catalogue has %d messages; the UI has more", len(en))
	}
	for id, forms := range en {
		jaForms, ok := ja[id]
		if !ok {
			t.Errorf("%q is in en.toml, not in ja.toml", id)
			continue
		}
		if a, b := sorted(placeholder, forms), sorted(placeholder, jaForms); !slices.Equal(a, b) {
			t.Errorf("%q: English fills in %v, Japanese %v", id, a, b)
		}
		if a, b := sorted(tag, forms), sorted(tag, jaForms); !slices.Equal(a, b) {
			t.Errorf("%q: English has the markup %v, Japanese %v", id, a, b)
		}
	}
	for id := range ja {
		if _, ok := en[id]; !ok {
			t.Errorf("%q is in ja.toml, not in en.toml", id)
		}
	}
}

func TestLoadMakesAPrinterForEachLanguage(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ lang, want string }{{"en", "Gallery"}, {"ja", "ギャラリー"}} {
		p := c.Printer(tt.lang)
		if p == nil {
			t.Fatalf("no printer for %s", tt.lang)
		}
		if got, err := p.T("gallery.title"); err != nil || got != tt.want {
			t.Errorf("%s gallery.title = %q, %v; want %q", tt.lang, got, err, tt.want)
		}
	}
	if c.Printer("fr") != nil {
		t.Error("a printer for fr, which the UI does not speak")
	}
}

func TestForPicksTheCookieThenAcceptLanguage(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cookie, accept, want string
	}{
		{"", "", "en"},
		{"", "ja", "ja"},
		{"", "ja-JP,ja;q=0.9,en;q=0.8", "ja"},
		{"", "en-GB,en;q=0.9,ja;q=0.5", "en"},
		{"", "fr-FR,fr;q=0.9", "en"},
		{"", "de;q=0.9,ja;q=0.2", "ja"},
		{"ja", "en-US", "ja"},
		{"en", "ja", "en"},
		{"fr", "ja", "ja"}, // a cookie naming no language of the UI is ignored
		{"", "not a header", "en"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tt.accept != "" {
			r.Header.Set("Accept-Language", tt.accept)
		}
		if tt.cookie != "" {
			r.AddCookie(&http.Cookie{Name: Cookie, Value: tt.cookie})
		}
		if got := c.For(r).Lang; got != tt.want {
			t.Errorf("cookie %q, Accept-Language %q: %s, want %s", tt.cookie, tt.accept, got, tt.want)
		}
	}
}

func TestFormatsPerLanguage(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	en, ja := c.Printer("en"), c.Printer("ja")
	at := time.Date(2026, 3, 7, 14, 5, 9, 0, time.FixedZone("JST", 9*60*60))
	tests := []struct {
		name, got, want string
	}{
		{"en date", en.Date(at), "7 Mar 2026, 05:05 UTC"},
		{"ja date", ja.Date(at), "2026年3月7日 05:05 UTC"},
		{"en clock", en.Clock(at), "05:05:09 UTC"},
		{"en duration", en.Duration(90 * time.Second), "1m30s"},
		{"ja duration", ja.Duration(90 * time.Second), "1分30秒"},
		{"ja hours", ja.Duration(2*time.Hour + 3*time.Second), "2時間3秒"},
		{"en zero", en.Duration(0), "0s"},
		{"en latency", en.Duration(250 * time.Millisecond), "250ms"},
		{"ja latency", ja.Duration(250 * time.Millisecond), "250ミリ秒"},
		{"en size", en.Size(1536 * 1024), "1.5 MiB"},
		{"en bytes", en.Size(12345), "12.1 KiB"},
		{"ja small", ja.Size(999), "999 B"},
		{"en limit", en.Limit(20 << 20), "20 MiB"},
		{"en odd limit", en.Limit(1500), "1,500 B"},
		{"ja limit", ja.Limit(64 << 10), "64 KiB"},
		{"value", mustT(t, ja, "error.too-large-upload", "Limit", Limit(8<<20)), "ここでアップロードできる写真は 8 MiB までです(ConfigMap の upload-limit)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func mustT(t *testing.T, p *Printer, id string, pairs ...any) string {
	t.Helper()
	s, err := p.T(id, pairs...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPluralsAndMarkup(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	en, ja := c.Printer("en"), c.Printer("ja")
	for _, tt := range []struct {
		p     *Printer
		n     int64
		want  string
		label string
	}{
		{en, 1, "(restarted once)", "en one"},
		{en, 3, "(restarted 3 times)", "en other"},
		{en, 1200, "(restarted 1,200 times)", "en grouped"},
		{ja, 1, "(1 回再起動)", "ja"},
	} {
		if got, err := tt.p.N("panel.restarted", tt.n); err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.label, got, err, tt.want)
		}
	}
	got, err := en.HTML("panel.answered-by", "Pod", `<script>alert(1)</script>`, "Version", "0.1.0")
	if err != nil || string(got) != `answered by <strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong> <small>v0.1.0</small>` {
		t.Errorf("HTML escapes data, keeps the catalogue's markup: %q, %v", got, err)
	}
	if _, err := en.T("no.such.message"); err == nil {
		t.Error("a missing message is not an error")
	}
	if _, err := en.T("panel.settings", "Fingerprint"); err == nil {
		t.Error("an odd number of data values is not an error")
	}
	if got := en.Must("no.such.message"); got != "no.such.message" {
		t.Errorf("Must on a missing message = %q, want its id", got)
	}
}
