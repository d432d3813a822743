// Package locale holds the frontend's message catalogues, one per language
// (catalog/en.toml and catalog/ja.toml), and picks the reader's language:
// the switch's cookie first, then the browser's Accept-Language, then
// English.
package locale

import (
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed catalog/*.toml
var catalogs embed.FS

// Languages are the UI's languages, English first: what a browser that
// asks for neither gets.
var Languages = []language.Tag{language.English, language.Japanese}

// Cookie is the name of the cookie the language switch sets.
const Cookie = "lang"

// Catalog is every language's messages.
type Catalog struct {
	matcher  language.Matcher
	printers map[string]*Printer
}

// Load parses the embedded catalogues.
func Load() (*Catalog, error) {
	b := i18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	c := &Catalog{matcher: language.NewMatcher(Languages), printers: map[string]*Printer{}}
	for _, tag := range Languages {
		name := "catalog/" + tag.String() + ".toml"
		if _, err := b.LoadMessageFileFS(catalogs, name); err != nil {
			return nil, fmt.Errorf("load the %s catalogue: %w", name, err)
		}
		c.printers[tag.String()] = &Printer{
			Lang:    tag.String(),
			loc:     i18n.NewLocalizer(b, tag.String()),
			numbers: message.NewPrinter(tag),
		}
	}
	return c, nil
}

// Printer returns the printer of lang ("en" or "ja"), or nil.
func (c *Catalog) Printer(lang string) *Printer { return c.printers[lang] }

// English is the printer of the API's words: problem JSON is for programs
// and stays English whatever the reader's language.
func (c *Catalog) English() *Printer { return c.printers["en"] }

// For picks r's language: the switch's cookie if it names a language of
// the UI, else the best match for Accept-Language.
func (c *Catalog) For(r *http.Request) *Printer {
	if ck, err := r.Cookie(Cookie); err == nil {
		if p, ok := c.printers[ck.Value]; ok {
			return p
		}
	}
	tag, _ := language.MatchStrings(c.matcher, r.Header.Get("Accept-Language"))
	base, _ := tag.Base()
	if p, ok := c.printers[base.String()]; ok {
		return p
	}
	return c.English()
}

// Printer writes one language's messages, dates, durations and sizes.
type Printer struct {
	// Lang is the language's BCP 47 tag: html lang, Content-Language and
	// the lessons' directory.
	Lang    string
	loc     *i18n.Localizer
	numbers *message.Printer
}

// T writes message id with data given as name, value pairs. A missing
// message or a malformed call is an error, so a template that names one
// fails to render instead of showing a key.
func (p *Printer) T(id string, pairs ...any) (string, error) {
	data, err := p.dataOf(pairs)
	if err != nil {
		return "", fmt.Errorf("message %q: %w", id, err)
	}
	return p.localize(id, data, nil)
}

// HTML writes message id, whose text may hold markup (it comes from the
// catalogue, which is trusted); every value in pairs is escaped first.
func (p *Printer) HTML(id string, pairs ...any) (template.HTML, error) {
	data, err := p.dataOf(pairs)
	if err != nil {
		return "", fmt.Errorf("message %q: %w", id, err)
	}
	for k, v := range data {
		if _, trusted := v.(template.HTML); !trusted {
			data[k] = template.HTMLEscapeString(fmt.Sprint(v))
		}
	}
	s, err := p.localize(id, data, nil)
	return template.HTML(s), err //nolint:gosec // the catalogue's markup is ours; the data is escaped above
}

// N writes message id in the plural form count asks for; count is in the
// data as Count.
func (p *Printer) N(id string, count int64, pairs ...any) (string, error) {
	data, err := p.dataOf(pairs)
	if err != nil {
		return "", fmt.Errorf("message %q: %w", id, err)
	}
	if data == nil {
		data = map[string]any{}
	}
	data["Count"] = p.numbers.Sprint(count)
	return p.localize(id, data, count)
}

// Must is T for messages the code names (titles of problems): those are
// checked by the catalogue tests, so a miss is a programming error and
// shows as the id rather than failing a page that reports a failure.
func (p *Printer) Must(id string, pairs ...any) string {
	s, err := p.T(id, pairs...)
	if err != nil {
		return id
	}
	return s
}

func (p *Printer) localize(id string, data map[string]any, count any) (string, error) {
	cfg := &i18n.LocalizeConfig{MessageID: id, PluralCount: count}
	if data != nil {
		cfg.TemplateData = data
	}
	s, err := p.loc.Localize(cfg)
	if err != nil {
		return "", fmt.Errorf("%s message %q: %w", p.Lang, id, err)
	}
	return s, nil
}

// dataOf makes a message's data of name, value pairs, writing each Value
// in p's language.
func (p *Printer) dataOf(pairs []any) (map[string]any, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	if len(pairs)%2 != 0 {
		return nil, fmt.Errorf("data must be name, value pairs; got %d values", len(pairs))
	}
	data := make(map[string]any, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		name, ok := pairs[i].(string)
		if !ok {
			return nil, fmt.Errorf("data name %v is not a string", pairs[i])
		}
		v := pairs[i+1]
		if lv, ok := v.(Value); ok {
			v = lv.In(p)
		}
		data[name] = v
	}
	return data, nil
}

// A Value is data whose words depend on the language: an error made
// before anyone knows who reads it carries one, and each page writes it
// in its reader's language.
type Value interface{ In(p *Printer) string }

// Limit is a configured size, written as Printer.Limit writes it.
type Limit int64

// In writes l in p's language.
func (l Limit) In(p *Printer) string { return p.Limit(int64(l)) }

// Duration is a length of time, written as Printer.Duration writes it.
type Duration time.Duration

// In writes d in p's language.
func (d Duration) In(p *Printer) string { return p.Duration(time.Duration(d)) }

// Date writes t in the language's date layout (format.date), in UTC.
func (p *Printer) Date(t time.Time) string {
	return t.UTC().Format(p.Must("format.date"))
}

// Clock writes t's time of day (format.clock), in UTC.
func (p *Printer) Clock(t time.Time) string {
	return t.UTC().Format(p.Must("format.clock"))
}

// Duration writes d as hours, minutes and seconds, or milliseconds under
// a second: 1m30s in English, 1分30秒 in Japanese.
func (p *Printer) Duration(d time.Duration) string {
	if d > 0 && d < time.Second {
		return p.Must("unit.ms", "N", d.Milliseconds())
	}
	d = d.Round(time.Second)
	h, m, s := int64(d/time.Hour), int64(d%time.Hour/time.Minute), int64(d%time.Minute/time.Second)
	var b strings.Builder
	if h > 0 {
		b.WriteString(p.Must("unit.h", "N", h))
	}
	if m > 0 {
		b.WriteString(p.Must("unit.m", "N", m))
	}
	if s > 0 || b.Len() == 0 {
		b.WriteString(p.Must("unit.s", "N", s))
	}
	return b.String()
}

// Size writes a byte count in binary units, with one decimal above a KiB,
// its number formatted for the language.
func (p *Printer) Size(n int64) string {
	switch {
	case n >= 1<<20:
		return p.Must("unit.mib", "N", p.numbers.Sprintf("%.1f", float64(n)/(1<<20)))
	case n >= 1<<10:
		return p.Must("unit.kib", "N", p.numbers.Sprintf("%.1f", float64(n)/(1<<10)))
	}
	return p.Must("unit.b", "N", p.numbers.Sprint(n))
}

// Limit writes a configured limit: whole units where it divides evenly
// (20 MiB), as the ConfigMap is written.
func (p *Printer) Limit(n int64) string {
	switch {
	case n > 0 && n%(1<<20) == 0:
		return p.Must("unit.mib", "N", p.numbers.Sprint(n>>20))
	case n > 0 && n%(1<<10) == 0:
		return p.Must("unit.kib", "N", p.numbers.Sprint(n>>10))
	}
	return p.Must("unit.b", "N", p.numbers.Sprint(n))
}
