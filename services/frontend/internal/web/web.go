// Package web is the frontend's HTTP surface: server-rendered pages, the
// JSON API under /api/v1, image bytes, the demo controls and the probes,
// all on one port. Its metrics are served elsewhere (main's METRICS_ADDR),
// so the Ingress that exposes this port does not expose them.
package web

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/kubelab/kubelab/services/frontend/internal/auth"
	"github.com/kubelab/kubelab/services/frontend/internal/backend"
	"github.com/kubelab/kubelab/services/frontend/internal/demo"
	"github.com/kubelab/kubelab/services/frontend/internal/live"
	"github.com/kubelab/kubelab/services/frontend/internal/locale"
	"github.com/kubelab/kubelab/services/frontend/internal/pod"
	"github.com/kubelab/kubelab/services/platform/build"
	"github.com/kubelab/kubelab/services/platform/health"
	"github.com/kubelab/kubelab/services/platform/telemetry"
)

//go:embed templates static
var assets embed.FS

// Live is what the pod's mounted volumes say right now. main builds a new
// one whenever a volume changes, so a pointer identifies a version of it.
type Live struct {
	Settings live.Settings
	Labels   []pod.Label
	// SecretFingerprint identifies the Secret volume's content; never the
	// content itself.
	SecretFingerprint string
}

// Deps are what the handlers use; main wires them.
type Deps struct {
	Log     *slog.Logger
	Build   build.Info
	Pod     pod.Info
	Live    func() *Live
	Backend *backend.Client
	Health  *health.Checker
	Metrics *telemetry.Metrics
	Auth    *auth.Auth
	Demo    *demo.Controls
	// Crash ends the process abruptly (the self-healing demo).
	Crash func()
	// Started is when the process started.
	Started time.Time
	// Pace is the slowest request body waited for.
	Pace Pace
	// LessonsURL is where the course is published; the panel links each
	// of its parts to a lesson there. Empty, it links nothing.
	LessonsURL string
	// ClusterView is the live view's clusterview sidecar, which
	// /cluster/stream is proxied to; nil where the pod has none (make run,
	// or an overlay without kustomize/components/live-view).
	ClusterView *url.URL
}

// Server serves every route.
type Server struct {
	Deps
	catalog *locale.Catalog
	// pages holds each language's parsed pages, by language and file
	// name: the templates' t, size and date functions are that language's.
	pages map[string]map[string]*template.Template
	color string
	// Header values set on every response, allocated once.
	servedBy, version []string

	// liveView relays the live view's stream; nil without a sidecar.
	liveView *httputil.ReverseProxy
	// streaming ends when the server stops: see StopStreams.
	streaming   context.Context
	StopStreams context.CancelFunc

	infoMu    sync.Mutex
	infoKey   infoKey
	infoBytes []byte
}

// New parses the templates, once for each language, and returns a Server.
func New(d Deps) (*Server, error) {
	catalog, err := locale.Load()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Deps:     d,
		catalog:  catalog,
		pages:    map[string]map[string]*template.Template{},
		color:    VersionColor(d.Build.Version),
		servedBy: []string{d.Build.Instance},
		version:  []string{d.Build.Version},
	}
	s.streaming, s.StopStreams = context.WithCancel(context.Background())
	if d.ClusterView != nil {
		s.liveView = s.clusterProxy(d.ClusterView)
	}
	names, err := fs.Glob(assets, "templates/page_*.html")
	if err != nil {
		return nil, err
	}
	for _, tag := range locale.Languages {
		p := catalog.Printer(tag.String())
		pages := map[string]*template.Template{}
		for _, name := range names {
			t, err := template.New("layout.html").Funcs(funcs).Funcs(s.langFuncs(p)).
				ParseFS(assets, "templates/layout.html", "templates/panel.html", name)
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", name, err)
			}
			pages[name[len("templates/"):]] = t
		}
		s.pages[p.Lang] = pages
	}
	return s, nil
}

// Handler returns every route behind the shared middleware: metrics by
// route pattern, the security and identity headers, cross-origin
// protection for every state-changing request (forms and API alike), and
// the pace every request body must keep.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// app routes are what a user or loadgen calls: the demo's injected
	// errors and latency apply to them, never to probes, assets or the
	// controls themselves (an instructor must be able to switch it off).
	app := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.Demo.Middleware(h, s.injected))
	}
	app("GET /{$}", s.gallery)
	app("POST /upload", s.uploadForm)
	app("GET /images/{id}", s.detail)
	app("POST /images/{id}/transforms", s.transformForm)
	app("POST /batches", s.batchForm)
	app("GET /batches/{id}", s.batchPage)
	app("GET /media/{id}", s.original)
	app("GET /media/{id}/variant", s.variant)
	app("GET /media/{id}/{rendition}", s.rendition)

	app("GET /api/v1/info", s.apiInfo)
	app("GET /api/v1/images", s.apiList)
	app("POST /api/v1/images", s.apiUpload)
	app("GET /api/v1/images/{id}", s.apiGet)
	app("DELETE /api/v1/images/{id}", s.apiDelete)
	app("POST /api/v1/images/{id}/transforms", s.apiTransform)
	app("POST /api/v1/batches", s.apiSubmitBatch)
	app("GET /api/v1/batches/{id}", s.apiGetBatch)

	mux.HandleFunc("POST /lang", s.setLanguage)
	// The live view is not an app route: the demo's faults must not hide
	// the cluster from the instructor who injected them.
	mux.HandleFunc("GET /cluster", s.clusterView)
	mux.HandleFunc("GET /cluster/stream", s.clusterStream)
	mux.HandleFunc("GET /admin", s.adminPage)
	mux.HandleFunc("POST /admin/login", s.login)
	mux.HandleFunc("POST /admin/logout", s.logout)
	mux.HandleFunc("POST /admin/demo", s.demoForm)
	mux.HandleFunc("GET /api/v1/admin/demo", s.apiDemo)
	mux.HandleFunc("PUT /api/v1/admin/demo", s.apiSetDemo)
	mux.HandleFunc("POST /api/v1/admin/crash", s.apiCrash)

	s.Health.Routes(mux)
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /theme.css", s.theme)
	// Unmatched paths get a 404 (or 405) in the caller's format.
	mux.HandleFunc("/", s.unmatched(mux))

	crossOrigin := http.NewCrossOriginProtection()
	crossOrigin.SetDenyHandler(http.HandlerFunc(s.crossOrigin))
	return otelhttp.NewHandler(s.Metrics.Middleware(s.headers(crossOrigin.Handler(s.paceBodies(mux)))), "frontend",
		otelhttp.WithFilter(traced))
}

// traced says which requests get a server span: not probes, assets or the
// live view's stream, which kubelet, every page and an open /cluster tab
// make all the time and which call nothing behind the frontend. The span
// is named after the route (POST /api/v1/images), from r.Pattern, which
// the mux sets on the very request every middleware here passes on.
func traced(r *http.Request) bool {
	switch p := r.URL.Path; {
	case p == "/healthz", p == "/readyz", p == "/theme.css", p == "/cluster/stream", strings.HasPrefix(p, "/static/"):
		return false
	}
	return true
}

// crossOrigin answers a state-changing request that a browser says came
// from another site's page (the CSRF case). Clients that send neither
// Sec-Fetch-Site nor Origin (curl, loadgen) are not browsers and pass.
func (s *Server) crossOrigin(w http.ResponseWriter, r *http.Request) {
	msg, args := "error.cross-site", []any{"Method", r.Method}
	if origin := r.Header.Get("Origin"); origin != "" {
		msg, args = "error.cross-origin", append(args, "Origin", origin)
	}
	s.fail(w, r, problemOf(http.StatusForbidden, "cross-origin", msg, args...))
}

// csp allows only this origin's scripts, styles and images: no inline
// script or style anywhere, which is why colours come from /theme.css.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

var (
	cspValue       = []string{csp}
	nosniff        = []string{"nosniff"}
	sameOrigin     = []string{"same-origin"}
	deny           = []string{"DENY"}
	jsonType       = []string{"application/json"}
	problemType    = []string{"application/problem+json"}
	noStore        = []string{"no-store"}
	immutableCache = []string{"public, max-age=31536000, immutable"}
)

// headers sets the security headers and says who answered: X-Served-By
// (this pod) and X-Version, which loadgen tabulates during a rollout.
func (s *Server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Security-Policy"] = cspValue
		h["X-Content-Type-Options"] = nosniff
		h["Referrer-Policy"] = sameOrigin
		h["X-Frame-Options"] = deny
		h["X-Served-By"] = s.servedBy
		h["X-Version"] = s.version
		next.ServeHTTP(w, r)
	})
}

func (s *Server) unmatched(mux *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/" {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			s.fail(w, r, problemOf(http.StatusMethodNotAllowed, "method-not-allowed", "error.method-not-allowed",
				"Method", r.Method, "Allowed", strings.Join(allowed, ", ")))
			return
		}
		s.fail(w, r, problemOf(http.StatusNotFound, "not-found", "error.no-page", "Path", r.URL.Path))
	}
}

// VersionColor gives each version its own colour, so a rolling update is
// visible as pages changing colour on refresh.
func VersionColor(version string) string {
	h := fnv.New32a()
	h.Write([]byte(version))
	return fmt.Sprintf("hsl(%d, 65%%, 42%%)", h.Sum32()%360)
}

// theme serves the colours the CSP keeps out of inline styles.
func (s *Server) theme(w http.ResponseWriter, _ *http.Request) {
	accent := s.Live().Settings.Accent
	if accent == "" {
		accent = s.color
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	fmt.Fprintf(w, ":root { --version: %s; --accent: %s; }\n", s.color, accent)
}
