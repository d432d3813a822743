package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Status is how the API server says a request failed (metav1.Status),
// both as a response's body and as a watch's ERROR event:
//
//	{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
//	 "message":"jobs is forbidden: User \"system:serviceaccount:kubelab:frontend\" cannot list resource \"jobs\" ...",
//	 "reason":"Forbidden","details":{"group":"batch","kind":"jobs"},"code":403}
type Status struct {
	Message string `json:"message"`
	// Reason is a word for programs: Forbidden, NotFound, Expired, Gone.
	Reason string `json:"reason"`
	Code   int    `json:"code"`
}

// StatusError is a failed request's Status. Its text is the API server's
// message, which already says what was refused and why.
type StatusError struct {
	Status Status
}

func (e *StatusError) Error() string { return e.Status.Message }

// IsGone says the API server no longer remembers the resourceVersion a
// watch asked to start from (etcd compacted it): only a new list helps.
func IsGone(err error) bool {
	var s *StatusError
	return errors.As(err, &s) && s.Status.Code == http.StatusGone
}

// statusOf reads a failed response: a Status when the API server sent
// one, else the HTTP status and the start of the body (a proxy's page).
func statusOf(resp *http.Response) *StatusError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var s struct {
		Kind string `json:"kind"`
		Status
	}
	if json.Unmarshal(body, &s) == nil && s.Kind == "Status" && s.Message != "" {
		if s.Code == 0 {
			s.Code = resp.StatusCode
		}
		return &StatusError{Status: s.Status}
	}
	text := strings.TrimSpace(string(body))
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	msg := fmt.Sprintf("the API server answered %s", resp.Status)
	if text != "" {
		msg += ": " + text
	}
	return &StatusError{Status: Status{Message: msg, Reason: http.StatusText(resp.StatusCode), Code: resp.StatusCode}}
}
