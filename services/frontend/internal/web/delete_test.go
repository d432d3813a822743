package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// jsonString is a top-level string field of a JSON body.
func jsonString(t *testing.T, body, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	s, _ := m[field].(string)
	return s
}

// Deleting a photo takes the delete token its upload returned, as a
// Bearer credential; without it the photo stays, and the answer says why
// in problem JSON.
func TestDeleteNeedsTheUploadsToken(t *testing.T) {
	h := newHarness(t)
	upload := func(seed uint64) (id, token string) {
		resp, body := h.do(t, http.MethodPost, "/api/v1/images?filename=p.png", strings.NewReader(string(pipelinetest.PNG(40, 30, seed))),
			"Content-Type", "image/png")
		id, token = jsonField(t, body, "image", "id"), jsonString(t, body, "delete_token")
		if resp.StatusCode != http.StatusCreated || id == "" || token == "" {
			t.Fatalf("upload: %d %s; want an id and a delete_token", resp.StatusCode, body)
		}
		return id, token
	}
	id, token := upload(1)
	_, otherToken := upload(2)
	for _, tt := range []struct {
		name    string
		headers []string
		status  int
		detail  string
	}{
		{"no credentials", nil, http.StatusUnauthorized, "delete_token"},
		{"the admin scheme's cookie is no token", []string{"Cookie", "kubelab_admin=1.abc"}, http.StatusUnauthorized, "delete_token"},
		{"a wrong token", []string{"Authorization", "Bearer nope"}, http.StatusForbidden, "not the token"},
		{"another photo's token", []string{"Authorization", "Bearer " + otherToken}, http.StatusForbidden, "not the token"},
		{"its own token", []string{"Authorization", "Bearer " + token}, http.StatusNoContent, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.do(t, http.MethodDelete, "/api/v1/images/"+id, nil, tt.headers...)
			if tt.status == http.StatusNoContent {
				if resp.StatusCode != tt.status {
					t.Fatalf("delete: %d %s", resp.StatusCode, body)
				}
				resp, body = h.do(t, http.MethodGet, "/api/v1/images/"+id, nil)
				assertProblem(t, resp, body, http.StatusNotFound, "")
				return
			}
			assertProblem(t, resp, body, tt.status, tt.detail)
			if tt.status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
			if resp, body := h.do(t, http.MethodGet, "/api/v1/images/"+id, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("the photo is gone after a refused delete: %d %s", resp.StatusCode, body)
			}
		})
	}
}
