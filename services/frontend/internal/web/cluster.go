package web

import (
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/kubelab/kubelab/services/platform/telemetry"
)

type clusterPage struct {
	common
	// Off is true where the pod has no clusterview sidecar.
	Off bool
}

// clusterView is the live view's page; the browser fills it from
// /cluster/stream.
func (s *Server) clusterView(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "page_cluster.html", &clusterPage{Off: s.liveView == nil})
}

// clusterStream passes the sidecar's server-sent events to the browser.
// The sidecar watches the namespace, holds the API token, and bounds how
// many browsers it streams to; the frontend only relays.
func (s *Server) clusterStream(w http.ResponseWriter, r *http.Request) {
	if s.liveView == nil {
		s.fail(w, r, problemOf(http.StatusServiceUnavailable, "cluster-view-off", "error.cluster-view-off"))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streaming, cancel)()
	s.liveView.ServeHTTP(w, r.WithContext(ctx))
}

// clusterProxy relays /cluster/stream to the sidecar at target. A
// text/event-stream answer is flushed event by event; when the browser
// leaves, its request's context ends the upstream request too.
func (s *Server) clusterProxy(target *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path, pr.Out.URL.RawPath, pr.Out.URL.RawQuery = "/cluster/stream", "", ""
			// Cookies (the admin session) are the frontend's business.
			pr.Out.Header.Del("Cookie")
		},
		FlushInterval: -1,
		// A stream the sidecar cuts short is logged by the proxy itself.
		ErrorLog: telemetry.ErrorLog(s.Log, "proxy", "clusterview"),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.Log.Warn("live view sidecar did not answer", "err", err)
			s.fail(w, r, problemOf(http.StatusBadGateway, "cluster-view-down", "error.cluster-view-down"))
		},
	}
}
