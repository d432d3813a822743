package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubelab/kubelab/services/frontend/internal/locale"
)

// Error is a failure with what the caller should see: an HTTP status, the
// kind of problem (Type, whose title the catalogue holds in every
// language) and what happened, as a catalogue message (Msg, Args) or,
// for an error with no message of its own, as Detail, shown as it is.
type Error struct {
	Status int
	Type   string
	Msg    string
	Args   []any
	Detail string
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return e.Type + ": " + e.Detail
	}
	return e.Type + ": " + e.Msg
}

// problemOf is the usual way to make an Error: a status, a type and the
// catalogue message that explains it, with name, value pairs.
func problemOf(status int, typ, msg string, args ...any) *Error {
	return &Error{Status: status, Type: typ, Msg: msg, Args: args}
}

func badRequest(msg string, args ...any) *Error {
	return problemOf(http.StatusBadRequest, "bad-request", msg, args...)
}

// title and detail say e in p's language.
func (e *Error) title(p *locale.Printer) string { return p.Must("problem." + e.Type) }

func (e *Error) detail(p *locale.Printer) string {
	if e.Msg == "" {
		return e.Detail
	}
	return p.Must(e.Msg, e.Args...)
}

// problemTypes is where the problem types are documented; problem JSON's
// type is this plus "#" and the Error's Type.
const problemTypes = "https://github.com/kubelab/kubelab/blob/main/docs/problems.md"

// problem is an RFC 9457 problem details body.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// grpcProblems maps imageproc's status codes to what a caller sees.
var grpcProblems = map[codes.Code]struct {
	status int
	typ    string
}{
	codes.InvalidArgument:    {http.StatusBadRequest, "bad-request"},
	codes.Unauthenticated:    {http.StatusUnauthorized, "unauthorized"},
	codes.PermissionDenied:   {http.StatusForbidden, "forbidden"},
	codes.NotFound:           {http.StatusNotFound, "not-found"},
	codes.AlreadyExists:      {http.StatusConflict, "conflict"},
	codes.FailedPrecondition: {http.StatusConflict, "conflict"},
	codes.ResourceExhausted:  {http.StatusRequestEntityTooLarge, "too-large"},
	codes.Unavailable:        {http.StatusServiceUnavailable, "imageproc-unavailable"},
	codes.DeadlineExceeded:   {http.StatusGatewayTimeout, "imageproc-timeout"},
	codes.Canceled:           {http.StatusServiceUnavailable, "imageproc-unavailable"},
}

// classify turns any error into what the caller sees. imageproc's status
// messages are written to be shown (in English: its pages say so);
// anything unclassified is logged and reported without detail.
func classify(err error) (e *Error, internal bool) {
	if errors.As(err, &e) {
		return e, false
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return problemOf(http.StatusRequestEntityTooLarge, "too-large", "error.body-too-large"), false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return problemOf(http.StatusGatewayTimeout, "imageproc-timeout", "error.imageproc-timeout"), false
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		said := []any{"Said", st.Message()}
		if p, ok := grpcProblems[st.Code()]; ok {
			return problemOf(p.status, p.typ, "error.imageproc-said", said...), false
		}
		return problemOf(http.StatusBadGateway, "imageproc-error", "error.imageproc-said", said...), true
	}
	return problemOf(http.StatusInternalServerError, "internal", "error.internal"), true
}

// wantsJSON: the API always answers JSON; elsewhere the Accept header
// decides between an error page and problem JSON.
func wantsJSON(r *http.Request) bool {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		return true
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "json") && !strings.Contains(accept, "text/html")
}

// fail answers r with err: problem JSON for API callers, a page for people.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e, internal := classify(err)
	switch {
	case internal:
		s.Log.ErrorContext(r.Context(), "request failed", "route", r.Pattern, "err", err)
	case e.Status >= http.StatusInternalServerError:
		// Expected in an outage (imageproc unavailable or slow), but an
		// answer of 5xx must say why somewhere: the page shows only
		// imageproc's message, this keeps the whole status.
		s.Log.WarnContext(r.Context(), "request failed", "route", r.Pattern, "status", e.Status, "err", err)
	}
	if wantsJSON(r) {
		h := w.Header()
		h["Content-Type"] = problemType
		h["Cache-Control"] = noStore
		w.WriteHeader(e.Status)
		en := s.catalog.English()
		_ = json.NewEncoder(w).Encode(problem{Type: problemTypes + "#" + e.Type, Title: e.title(en), Status: e.Status,
			Detail: e.detail(en), Instance: r.URL.Path})
		return
	}
	s.render(w, r, e.Status, "page_error.html", &errorPage{Error: e})
}

type errorPage struct {
	common
	Error *Error
}

// injected is the answer to a request the error-rate demo chose to fail.
func (s *Server) injected(w http.ResponseWriter, r *http.Request) {
	s.fail(w, r, problemOf(http.StatusServiceUnavailable, "injected-fault", "error.injected"))
}
