package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestBearerAndSessionFollowTheToken(t *testing.T) {
	token := "first-token"
	a := New(func() string { return token }, []byte("session-key"))

	bearer := func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/admin/demo", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	if !a.Allowed(bearer("first-token")) || a.Allowed(bearer("wrong")) {
		t.Fatal("bearer check does not follow the token")
	}

	rec := httptest.NewRecorder()
	if a.Login(rec, httptest.NewRequest(http.MethodPost, "/admin/login", nil), "wrong") {
		t.Fatal("login with a wrong token succeeded")
	}
	if !a.Login(rec, httptest.NewRequest(http.MethodPost, "/admin/login", nil), "first-token") {
		t.Fatal("login with the token failed")
	}
	cookie := rec.Result().Cookies()[0]
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie not locked down: %+v", cookie)
	}
	withCookie := func(c *http.Cookie) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/admin", nil)
		r.AddCookie(c)
		return r
	}
	if !a.Allowed(withCookie(cookie)) {
		t.Fatal("session cookie refused")
	}
	tampered := *cookie
	tampered.Value = "9999999999" + cookie.Value[len("9999999999"):]
	if a.Allowed(withCookie(&tampered)) {
		t.Fatal("tampered expiry accepted")
	}

	// Rotation: the old token and the sessions made with it stop working.
	token = "second-token"
	if a.Allowed(bearer("first-token")) || a.Allowed(withCookie(cookie)) {
		t.Fatal("old token or its session still accepted after rotation")
	}
	if !a.Allowed(bearer("second-token")) {
		t.Fatal("new token refused")
	}

	// Expiry.
	rec = httptest.NewRecorder()
	a.Login(rec, httptest.NewRequest(http.MethodPost, "/", nil), "second-token")
	a.now = func() time.Time { return time.Now().Add(sessionLifetime + time.Minute) }
	if a.Allowed(withCookie(rec.Result().Cookies()[0])) {
		t.Fatal("expired session accepted")
	}

	// No token: everything is refused, even an empty bearer.
	token = ""
	if a.Enabled() || a.Allowed(bearer("")) {
		t.Fatal("controls usable without a configured token")
	}
}
