package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a failure with what the caller should see: an HTTP status, a
// short title and a detail that is safe to show.
type Error struct {
	Status int
	Title  string
	Detail string
}

func (e *Error) Error() string { return e.Title + ": " + e.Detail }

func badRequest(detail string) *Error {
	return &Error{Status: http.StatusBadRequest, Title: "bad request", Detail: detail}
}

// problem is an RFC 9457 problem details body.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// classify turns any error into what the caller sees. imageproc's status
// messages are written to be shown; anything unclassified is logged and
// reported without detail.
func classify(err error) (e *Error, internal bool) {
	if errors.As(err, &e) {
		return e, false
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &Error{Status: http.StatusRequestEntityTooLarge, Title: "too large",
			Detail: "the request body is larger than this page accepts"}, false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Status: http.StatusGatewayTimeout, Title: "imageproc timed out", Detail: "imageproc did not answer in time"}, false
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		code := map[codes.Code]int{
			codes.InvalidArgument:    http.StatusBadRequest,
			codes.Unauthenticated:    http.StatusUnauthorized,
			codes.PermissionDenied:   http.StatusForbidden,
			codes.NotFound:           http.StatusNotFound,
			codes.AlreadyExists:      http.StatusConflict,
			codes.FailedPrecondition: http.StatusConflict,
			codes.ResourceExhausted:  http.StatusRequestEntityTooLarge,
			codes.Unavailable:        http.StatusServiceUnavailable,
			codes.DeadlineExceeded:   http.StatusGatewayTimeout,
			codes.Canceled:           http.StatusServiceUnavailable,
		}[st.Code()]
		if code == 0 {
			return &Error{Status: http.StatusBadGateway, Title: "imageproc error", Detail: st.Message()}, true
		}
		title := strings.ToLower(http.StatusText(code))
		if code == http.StatusServiceUnavailable {
			title = "imageproc unavailable"
		}
		return &Error{Status: code, Title: title, Detail: st.Message()}, false
	}
	return &Error{Status: http.StatusInternalServerError, Title: "internal error", Detail: "see the frontend log"}, true
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
	if internal {
		s.Log.ErrorContext(r.Context(), "request failed", "route", r.Pattern, "err", err)
	}
	if wantsJSON(r) {
		h := w.Header()
		h["Content-Type"] = problemType
		h["Cache-Control"] = noStore
		w.WriteHeader(e.Status)
		_ = json.NewEncoder(w).Encode(problem{Type: "about:blank", Title: e.Title, Status: e.Status, Detail: e.Detail, Instance: r.URL.Path})
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
	s.fail(w, r, &Error{Status: http.StatusServiceUnavailable, Title: "injected fault",
		Detail: "the error-rate demo control failed this request on purpose"})
}
