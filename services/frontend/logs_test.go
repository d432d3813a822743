package main_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/imageproc/imageproctest"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

// TestProcessEveryLogLineIsJSON provokes the lines kubelab's own code
// does not write: net/http's reverse proxy losing its upstream mid-stream,
// gRPC's client failing to connect, gRPC's server handed something that is
// not HTTP/2. Each would be a plain-text line among the JSON ones unless
// routed through slog; a log pipeline that parses JSON would drop it, or
// the whole stream.
func TestProcessEveryLogLineIsJSON(t *testing.T) {
	// A live view sidecar that starts a stream and dies in the middle of it.
	sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {}\n\n")
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		if conn, _, err := rc.Hijack(); err == nil {
			_ = conn.Close()
		}
	}))
	defer sidecar.Close()

	imageproc := imageproctest.Start(t, "imageproc-logs", "", "LOG_LEVEL=debug")
	addr := proctest.FreeAddr(t)
	frontend := proctest.Start(t, "frontend", proctest.Build(t, "."), nil,
		"HTTP_ADDR="+addr, "METRICS_ADDR=", "POD_NAME=frontend-logs", "LOG_LEVEL=info", "CLUSTERVIEW_URL="+sidecar.URL,
		// Nobody listens there: every call fails to connect.
		"IMAGEPROC_ADDR="+proctest.FreeAddr(t), "IMAGEPROC_BALANCING=pick_first")
	proctest.WaitFor(t, "frontend ready", 20*time.Second, func() bool { return proctest.Status("http://"+addr+"/readyz") == http.StatusOK })

	if resp, err := http.Get("http://" + addr + "/cluster/stream"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	if code, _ := get(t, "http://"+addr+"/api/v1/images"); code == http.StatusOK {
		t.Fatalf("images with imageproc away: %d", code)
	}
	// HTTP/1.1 on the gRPC port.
	if conn, err := net.Dial("tcp", imageproc.Addr); err == nil {
		_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: imageproc\r\n\r\n")
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, conn)
		_ = conn.Close()
	}

	tests := []struct {
		name string
		proc *proctest.Proc
		want string // in the msg of a record that would be plain text without slog
	}{
		{"frontend", frontend, "ReverseProxy read error during body copy"},
		{"frontend", frontend, "createTransport failed to connect"},
		{"imageproc", imageproc.Proc, "failed to create ServerTransport"},
	}
	for _, tt := range tests {
		t.Run(tt.name+": "+tt.want, func(t *testing.T) {
			proctest.WaitFor(t, tt.want, 10*time.Second, func() bool { return strings.Contains(tt.proc.Log.String(), tt.want) })
			found := false
			for line := range strings.SplitSeq(strings.TrimSpace(tt.proc.Log.String()), "\n") {
				var rec struct{ Level, Msg string }
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Errorf("%s wrote a line that is not JSON: %q", tt.name, line)
					continue
				}
				found = found || strings.Contains(rec.Msg, tt.want)
			}
			if !found {
				t.Errorf("no JSON record of %s says %q", tt.name, tt.want)
			}
		})
	}
}
