// Package auth guards the demo controls with the admin token from a
// Secret. The token is read from the Secret's volume on every check, so
// rotating the Secret takes effect without a restart; a browser session is
// a signed cookie bound to the token, so rotation also ends old sessions.
package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CookieName is the session cookie's name.
const CookieName = "kubelab_admin"

// sessionLifetime bounds how long a login lasts.
const sessionLifetime = 8 * time.Hour

// Auth checks requests against the current token.
type Auth struct {
	token func() string
	key   []byte
	now   func() time.Time
}

// New returns an Auth reading the token through token (empty: no token,
// controls disabled) and signing sessions with key.
func New(token func() string, key []byte) *Auth {
	return &Auth{token: token, key: key, now: time.Now}
}

// Enabled reports whether a token is configured at all.
func (a *Auth) Enabled() bool { return a.token() != "" }

// Allowed reports whether r carries the current token as a Bearer
// credential or a valid session cookie.
func (a *Auth) Allowed(r *http.Request) bool {
	token := a.token()
	if token == "" {
		return false
	}
	if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return equal(h, token)
	}
	c, err := r.Cookie(CookieName)
	return err == nil && a.validSession(c.Value, token)
}

// Login sets a session cookie if given is the current token.
func (a *Auth) Login(w http.ResponseWriter, r *http.Request, given string) bool {
	token := a.token()
	if token == "" || !equal(given, token) {
		return false
	}
	expires := a.now().Add(sessionLifetime)
	exp := strconv.FormatInt(expires.Unix(), 10)
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: exp + "." + a.sign(exp, token), Path: "/",
		Expires: expires, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	})
	return true
}

// Logout clears the session cookie.
func Logout(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func (a *Auth) validSession(value, token string) bool {
	exp, mac, ok := strings.Cut(value, ".")
	if !ok {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || a.now().Unix() > unix {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(a.sign(exp, token)))
}

// sign binds a session to its expiry and to a hash of the token, so a new
// token invalidates every session made with the old one.
func (a *Auth) sign(exp, token string) string {
	th := sha256.Sum256([]byte(token))
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(exp))
	m.Write(th[:])
	return hex.EncodeToString(m.Sum(nil))
}

// equal compares in constant time; hashing first hides the length too.
func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
