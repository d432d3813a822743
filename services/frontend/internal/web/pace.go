package web

import (
	"errors"
	"github.com/kubelab/kubelab/services/frontend/internal/locale"
	"io"
	"net/http"
	"os"
	"time"
)

// Pace is the slowest request body the frontend waits for. The server has
// no ReadTimeout, as a 50 MiB photo over a slow link may take minutes, but
// a body arriving at a byte a second would hold a connection, a goroutine
// and, for an upload, imageproc's temporary file for hours. So every
// Window at least MinRate×Window bytes must arrive, or the request fails
// with 408 and its connection is closed. A client that sends nothing is
// cut after one Window.
type Pace struct {
	// MinRate is in bytes per second; 0 cuts only a client idle for a
	// whole Window.
	MinRate int64
	// Window is how long the rate is measured over; 0 turns pacing off.
	Window time.Duration
}

func (p Pace) tooSlow() *Error {
	if p.MinRate > 0 {
		return problemOf(http.StatusRequestTimeout, "request-too-slow", "error.too-slow-rate",
			"Rate", locale.Limit(p.MinRate), "Window", locale.Duration(p.Window))
	}
	return problemOf(http.StatusRequestTimeout, "request-too-slow", "error.too-slow-idle", "Window", locale.Duration(p.Window))
}

// paceBodies applies p to every request that has a body.
func (s *Server) paceBodies(next http.Handler) http.Handler {
	p := s.Pace
	if p.Window <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			// No deadline on a request without a body: net/http reads
			// its connection during the handler to notice a client that
			// hangs up, and a deadline there would cancel the request.
			b := &pacedBody{ReadCloser: r.Body, w: w, rc: http.NewResponseController(w), pace: p,
				quota: int64(float64(p.MinRate) * p.Window.Seconds()), left: p.Window}
			if b.rc.SetReadDeadline(time.Now().Add(p.Window)) == nil {
				r.Body = b
			}
		}
		next.ServeHTTP(w, r)
	})
}

// pacedBody counts against the window only the time spent waiting for the
// client, not the time the handler spends elsewhere (imageproc pushing
// back on an upload is not the client's slowness).
type pacedBody struct {
	io.ReadCloser
	w     http.ResponseWriter
	rc    *http.ResponseController
	pace  Pace
	quota int64         // bytes due in each window
	got   int64         // bytes received in this window
	left  time.Duration // waiting time left in this window
}

func (b *pacedBody) Read(p []byte) (int, error) {
	start := time.Now()
	_ = b.rc.SetReadDeadline(start.Add(b.left))
	n, err := b.ReadCloser.Read(p)
	b.left -= time.Since(start)
	if b.got += int64(n); b.got >= b.quota {
		b.got, b.left = 0, b.pace.Window // a new window
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The connection is closed after the answer: the rest of the
		// body is not worth waiting for.
		b.w.Header().Set("Connection", "close")
		return n, b.pace.tooSlow()
	case err != nil:
		// At the end of the body net/http starts reading the connection
		// itself (see paceBodies): lift the deadline at once.
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
