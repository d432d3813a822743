package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/frontend/internal/auth"
	"github.com/kubelab/kubelab/services/frontend/internal/backend"
	"github.com/kubelab/kubelab/services/frontend/internal/demo"
	"github.com/kubelab/kubelab/services/frontend/internal/live"
	"github.com/kubelab/kubelab/services/frontend/internal/locale"
	"github.com/kubelab/kubelab/services/frontend/internal/pod"
	"github.com/kubelab/kubelab/services/platform/filename"
	"github.com/kubelab/kubelab/services/platform/health"
)

// galleryPageSize is how many photos one gallery page shows.
const galleryPageSize = 24

// formLimit bounds every form and JSON body except uploads.
const formLimit = 64 << 10

// Panel is the cluster panel on every page: where this answer came from.
type Panel struct {
	Pod               pod.Info
	Labels            []pod.Label
	Version, Revision string
	Settings          live.Settings
	SecretFingerprint string
	Imageproc         backend.Options
	// AnsweredBy and AnsweredVersion name the imageproc pod that served
	// this page's calls (empty when the page made none).
	AnsweredBy, AnsweredVersion string
	Health                      health.Status
	Demo                        demo.State
	AdminEnabled                bool
	// Lessons links each part of the panel to the lesson that explains it.
	Lessons Lessons
}

// common is what every page template gets.
type common struct {
	Settings live.Settings
	Panel    Panel
	Presets  []preset
	Path     string
	// Return is where the language switch comes back to: this page.
	Return string
}

func (c *common) base() *common { return c }

type pageData interface{ base() *common }

// tracked returns a context that records which imageproc pod answers.
func tracked(r *http.Request) (context.Context, *backend.Answer) { return backend.Track(r.Context()) }

// unary makes one unary call to imageproc for r, within the unary
// deadline, and says which pod answered.
func unary[Req, Resp any](s *Server, r *http.Request, call func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, *backend.Answer, error) {
	ctx, answer := tracked(r)
	ctx, cancel := s.Backend.Unary(ctx)
	defer cancel()
	resp, err := call(ctx, req)
	return resp, answer, err
}

func (s *Server) panel(answer *backend.Answer) Panel {
	l := s.Live()
	p := Panel{
		Pod: s.Pod, Labels: l.Labels, Version: s.Build.Version, Revision: s.Build.Revision,
		Settings: l.Settings, SecretFingerprint: l.SecretFingerprint, Imageproc: s.Backend.Options(),
		Health: s.Health.Status(), Demo: s.Demo.State(), AdminEnabled: s.Auth.Enabled(),
	}
	if answer != nil {
		p.AnsweredBy, p.AnsweredVersion = answer.ServedBy()
	}
	return p
}

// render executes a page into a buffer first, so a template error becomes
// a clean 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, page string, data pageData) {
	s.renderAnswered(w, r, code, page, data, nil)
}

func (s *Server) renderAnswered(w http.ResponseWriter, r *http.Request, code int, page string, data pageData, answer *backend.Answer) {
	p := s.catalog.For(r)
	c := data.base()
	c.Panel = s.panel(answer)
	c.Panel.Lessons = lessonsFor(s.LessonsURL, p)
	c.Settings = c.Panel.Settings
	c.Presets = presets
	c.Path = r.URL.Path
	c.Return = r.URL.Path
	if r.Method == http.MethodGet {
		c.Return = r.URL.RequestURI()
	}
	var buf bytes.Buffer
	if err := s.pages[p.Lang][page].Execute(&buf, data); err != nil {
		s.Log.ErrorContext(r.Context(), "render page", "page", page, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", p.Lang)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

type galleryPage struct {
	common
	Images   []*imageprocv1.Image
	Next     string
	First    bool
	Degraded *Error // imageproc could not list photos
}

func (s *Server) gallery(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("page")
	data := &galleryPage{First: token == ""}
	resp, answer, err := unary(s, r, s.Backend.Images.ListImages, &imageprocv1.ListImagesRequest{PageSize: galleryPageSize, PageToken: token})
	if err != nil {
		// The page still renders, with the reason: a learner scaling
		// PostgreSQL to zero sees why the gallery is empty.
		e, _ := classify(err)
		if e.Status == http.StatusBadRequest {
			s.fail(w, r, err)
			return
		}
		data.Degraded = e
		s.renderAnswered(w, r, e.Status, "page_gallery.html", data, answer)
		return
	}
	data.Images, data.Next = resp.GetImages(), resp.GetNextPageToken()
	s.renderAnswered(w, r, http.StatusOK, "page_gallery.html", data, answer)
}

type detailPage struct {
	common
	Image    *imageprocv1.Image
	Variants []*imageprocv1.Variant
	Made     string // spec just made, highlighted
}

func (s *Server) detail(w http.ResponseWriter, r *http.Request) {
	resp, answer, err := unary(s, r, s.Backend.Images.GetImage, &imageprocv1.GetImageRequest{Id: r.PathValue("id")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data := &detailPage{Image: resp.GetImage(), Variants: resp.GetVariants(), Made: r.URL.Query().Get("made")}
	s.renderAnswered(w, r, http.StatusOK, "page_detail.html", data, answer)
}

func (s *Server) requireFeature(w http.ResponseWriter, r *http.Request, feature string) bool {
	if s.Live().Settings.Enabled(feature) {
		return true
	}
	s.fail(w, r, problemOf(http.StatusForbidden, "feature-off", "error.feature-off", "Feature", feature, "Key", live.KeyFeatures))
	return false
}

// uploadOrFail stores the photo in r, or answers r with why not.
func (s *Server) uploadOrFail(w http.ResponseWriter, r *http.Request) (*imageprocv1.UploadResponse, bool) {
	if !s.requireFeature(w, r, live.FeatureUpload) {
		return nil, false
	}
	up, err := s.upload(r)
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	return up, true
}

func (s *Server) uploadForm(w http.ResponseWriter, r *http.Request) {
	if up, ok := s.uploadOrFail(w, r); ok {
		http.Redirect(w, r, "/images/"+url.PathEscape(up.GetImage().GetId()), http.StatusSeeOther)
	}
}

// formPreset reads the preset a form names, if feature is on, or answers
// r with why not.
func (s *Server) formPreset(w http.ResponseWriter, r *http.Request, feature string) (preset, bool) {
	if !s.requireFeature(w, r, feature) {
		return preset{}, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, formLimit)
	p, ok := findPreset(r.PostFormValue("preset"))
	if !ok {
		s.fail(w, r, badRequest("error.choose-preset"))
	}
	return p, ok
}

// applyPreset makes (or finds) the variant p of photo id.
func (s *Server) applyPreset(ctx context.Context, id string, p preset) (*imageprocv1.Variant, error) {
	ctx, cancel := s.Backend.Stream(ctx)
	defer cancel()
	resp, err := s.Backend.Images.Transform(ctx, &imageprocv1.TransformRequest{ImageId: id, Operations: p.ops, Output: p.output})
	return resp.GetVariant(), err
}

func (s *Server) transformForm(w http.ResponseWriter, r *http.Request) {
	p, ok := s.formPreset(w, r, live.FeatureTransforms)
	if !ok {
		return
	}
	id := r.PathValue("id")
	v, err := s.applyPreset(r.Context(), id, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/images/"+url.PathEscape(id)+"?made="+url.QueryEscape(v.GetSpec()), http.StatusSeeOther)
}

func (s *Server) batchForm(w http.ResponseWriter, r *http.Request) {
	p, ok := s.formPreset(w, r, live.FeatureBatch)
	if !ok {
		return
	}
	b, err := s.submitBatch(r.Context(), &imageprocv1.SubmitBatchRequest{Operations: p.ops, Output: p.output})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/batches/"+url.PathEscape(b.GetId()), http.StatusSeeOther)
}

// submitBatch submits req. With no image ids imageproc queues every photo
// itself, in one statement, however many there are; one look first turns
// an empty gallery into a clear answer instead of an empty batch.
func (s *Server) submitBatch(ctx context.Context, req *imageprocv1.SubmitBatchRequest) (*imageprocv1.Batch, error) {
	if len(req.GetImageIds()) == 0 {
		lctx, cancel := s.Backend.Unary(ctx)
		resp, err := s.Backend.Images.ListImages(lctx, &imageprocv1.ListImagesRequest{PageSize: 1})
		cancel()
		if err != nil {
			return nil, err
		}
		if len(resp.GetImages()) == 0 {
			return nil, badRequest("error.no-photos")
		}
	}
	ctx, cancel := s.Backend.Unary(ctx)
	defer cancel()
	resp, err := s.Backend.Queue.SubmitBatch(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.GetBatch(), nil
}

type batchPage struct {
	common
	Batch *imageprocv1.Batch
}

func (s *Server) batchPage(w http.ResponseWriter, r *http.Request) {
	resp, answer, err := unary(s, r, s.Backend.Queue.GetBatch, &imageprocv1.GetBatchRequest{Id: r.PathValue("id")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderAnswered(w, r, http.StatusOK, "page_batch.html", &batchPage{Batch: resp.GetBatch()}, answer)
}

type adminPage struct {
	common
	Allowed bool
	Problem *Error
	// Done is the catalogue message saying what was just done.
	Done string
}

// adminDone are the ?done= values the admin page confirms, and what each
// says: the page shows a message of its own, never the query's text.
var adminDone = map[string]string{"applied": "admin.applied"}

// UnreadyFor is what the readiness form offers: how long forced
// unreadiness lasts by default, and its bounds.
func (*adminPage) UnreadyFor() struct{ Default, Min, Max time.Duration } {
	return struct{ Default, Min, Max time.Duration }{demo.DefaultUnreadyFor, demo.MinUnreadyFor, demo.MaxUnreadyFor}
}

func (s *Server) adminPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "page_admin.html", &adminPage{Allowed: s.Auth.Allowed(r), Done: adminDone[r.URL.Query().Get("done")]})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, formLimit)
	if !s.Auth.Login(w, r, r.PostFormValue("token")) {
		// The token itself is never logged, right or wrong.
		s.Log.InfoContext(r.Context(), "admin login refused", "remote", r.RemoteAddr)
		s.render(w, r, http.StatusUnauthorized, "page_admin.html",
			&adminPage{Problem: problemOf(http.StatusUnauthorized, "unauthorized", "admin.wrong-token")})
		return
	}
	http.Redirect(w, r, "/admin", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	auth.Logout(w)
	http.Redirect(w, r, "/admin", http.StatusSeeOther)
}

func (s *Server) demoForm(w http.ResponseWriter, r *http.Request) {
	if !s.Auth.Allowed(r) {
		s.render(w, r, http.StatusUnauthorized, "page_admin.html",
			&adminPage{Problem: problemOf(http.StatusUnauthorized, "unauthorized", "admin.log-in-first")})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, formLimit)
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, badRequest("error.unreadable-form"))
		return
	}
	var ch demo.Change
	var err error
	switch action := r.PostForm.Get("action"); action {
	case "unready":
		ch.Unready = new(true)
		if v := strings.TrimSpace(r.PostForm.Get("unready_for")); v != "" {
			ch.UnreadyFor, err = parseDuration("unready_for", &v, "90s")
		}
	case "ready":
		ch.Unready = new(false)
	case "faults":
		ch, err = parseFaults(r.PostForm.Get("error_rate"), r.PostForm.Get("latency"))
	case "clear":
		ch = demo.Off()
	case "crash":
		s.crash(r)
		s.render(w, r, http.StatusOK, "page_admin.html", &adminPage{Allowed: true, Done: "admin.crashing"})
		return
	default:
		s.fail(w, r, badRequest("error.unknown-action", "Action", action))
		return
	}
	if err == nil {
		_, err = s.setDemo(r, ch)
	}
	if err != nil {
		s.render(w, r, http.StatusBadRequest, "page_admin.html", &adminPage{Allowed: true, Problem: demoProblem(err)})
		return
	}
	http.Redirect(w, r, "/admin?done=applied", http.StatusSeeOther)
}

// parseFaults reads the fault form: an error percentage and a latency,
// both set (empty is zero), readiness left alone.
func parseFaults(rate, latency string) (demo.Change, error) {
	ch := demo.Change{ErrorRate: new(0.0), Latency: new(time.Duration(0))}
	if rate = strings.TrimSpace(rate); rate != "" {
		var pct float64
		if _, err := fmt.Sscanf(rate, "%g", &pct); err != nil || pct < 0 || pct > 100 {
			return ch, badRequest("error.want-percent", "Value", rate)
		}
		*ch.ErrorRate = pct / 100
	}
	if latency = strings.TrimSpace(latency); latency != "" {
		d, err := parseDuration("latency", &latency, "250ms")
		if err != nil {
			return ch, err
		}
		ch.Latency = d
	}
	return ch, nil
}

func (s *Server) setDemo(r *http.Request, ch demo.Change) (demo.State, error) {
	st, err := s.Demo.Apply(r.Context(), ch)
	if err != nil {
		return st, err
	}
	s.Log.InfoContext(r.Context(), "demo controls changed", "unready", st.Unready, "unready_until", st.UnreadyUntil,
		"error_rate", st.ErrorRate, "latency", st.Latency.String())
	return st, nil
}

// crash exits shortly after the answer is written, so the browser sees
// the page and kubelet sees a container that died.
func (s *Server) crash(r *http.Request) {
	s.Log.WarnContext(r.Context(), "crash requested through the demo controls; exiting")
	time.AfterFunc(200*time.Millisecond, s.Crash)
}

// demoProblem says why the demo controls refused a change.
func demoProblem(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var r *demo.RangeError
	if errors.As(err, &r) {
		return badRequest("error.out-of-range", "Field", r.Field, "Value", r.Value, "Min", r.Min, "Max", r.Max)
	}
	return &Error{Status: http.StatusBadRequest, Type: "bad-request", Detail: err.Error()}
}

// funcs are the templates' functions that say nothing in a language.
var funcs = template.FuncMap{
	"percent": func(part, total int32) int32 {
		if total == 0 {
			return 0
		}
		return part * 100 / total
	},
	"finished": func(b *imageprocv1.Batch) bool { return b.GetPending()+b.GetLeased() == 0 },
	"specURL": func(id, spec string) string {
		return "/media/" + url.PathEscape(id) + "/variant?spec=" + url.QueryEscape(spec)
	},
	// goDuration writes a duration as the forms read it back (90s).
	"goDuration": shortDuration,
	// filename cleans names again as they are shown: photos stored
	// before imageproc cleaned names may still hold bidi controls.
	"filename": filename.Clean,
	// restarts is how many times a container that started n times was
	// restarted.
	"restarts": func(starts int) int64 { return int64(starts) - 1 },
	"portForward": func(p pod.Info) string {
		ns := ""
		if p.Namespace != "" {
			ns = " -n " + p.Namespace
		}
		return "kubectl" + ns + " port-forward pod/" + p.Name + " 8080"
	},
}

// language is one choice of the language switch, in its own words.
type language struct{ Tag, Name string }

// langFuncs are the templates' functions that speak p's language.
func (s *Server) langFuncs(p *locale.Printer) template.FuncMap {
	var languages []language
	for _, tag := range locale.Languages {
		other := s.catalog.Printer(tag.String())
		languages = append(languages, language{Tag: other.Lang, Name: other.Must("lang.name")})
	}
	return template.FuncMap{
		"t":         p.T,
		"th":        p.HTML,
		"n":         p.N,
		"lang":      func() string { return p.Lang },
		"languages": func() []language { return languages },
		"size":      p.Size,
		"limit":     p.Limit,
		"duration":  p.Duration,
		"when":      func(t interface{ AsTime() time.Time }) string { return p.Date(t.AsTime()) },
		// ends says when forced unreadiness ends: the clock time, and how
		// long from this page's rendering.
		"ends": func(t time.Time) string {
			return p.Must("format.ends", "Clock", p.Clock(t), "In", p.Duration(max(time.Until(t).Round(time.Second), 0)))
		},
		// words gives the page's script the messages it shows, by key.
		"words": func(ids ...string) (map[string]string, error) {
			out := make(map[string]string, len(ids))
			for _, id := range ids {
				s, err := p.T(id)
				if err != nil {
					return nil, err
				}
				out[id] = s
			}
			return out, nil
		},
		"problemTitle":  func(e *Error) string { return e.title(p) },
		"problemDetail": func(e *Error) string { return e.detail(p) },
	}
}

// shortDuration writes 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// setLanguage is the language switch: it remembers the choice in a cookie
// for a year and goes back to the page it was on.
func (s *Server) setLanguage(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, formLimit)
	lang := r.PostFormValue("lang")
	if s.catalog.Printer(lang) == nil {
		s.fail(w, r, badRequest("error.unknown-language", "Lang", lang))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: locale.Cookie, Value: lang, Path: "/", MaxAge: 365 * 24 * 60 * 60,
		HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, localPath(r.PostFormValue("return")), http.StatusSeeOther)
}

// localPath keeps a redirect on this site: a path of it, else the gallery.
// Browsers drop tabs and newlines from a Location and read a backslash as
// a slash, so "/\t/evil.test" would leave the site as surely as
// "//evil.test": any control character, space or backslash is refused.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") ||
		strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == '\\' || r == 0x7f }) {
		return "/"
	}
	return p
}
