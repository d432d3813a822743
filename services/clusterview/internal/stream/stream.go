// Package stream serves the live view's snapshots to browsers as
// server-sent events, through the frontend that proxies /cluster/stream.
package stream

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/kubelab/kubelab/services/clusterview/internal/view"
)

// heartbeat keeps an idle stream's connection open through proxies that
// close silent ones (the Ingress controller's read timeout is 60 s).
const heartbeat = 15 * time.Second

// writeWait bounds each write to a browser: one that stops reading is
// dropped instead of holding a goroutine.
const writeWait = 10 * time.Second

// retry is how long EventSource waits before it reconnects by itself: when
// this pod stops, the browser comes back through the Service to another.
const retry = "retry: 2000\n\n"

// problemBase is where each problem type is explained; the frontend's
// problems use the same page.
const problemBase = "https://github.com/kubelab/kubelab/blob/main/docs/problems.md#"

// Handler streams hub's snapshots: each event's data is one JSON Snapshot.
func Handler(hub *view.Hub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, err := hub.Subscribe()
		if errors.Is(err, view.ErrFull) {
			problem(w, http.StatusServiceUnavailable, "too-many-views", "too many live views",
				"this pod streams to as many browsers as LIVE_VIEWS_MAX allows; try again later")
			return
		}
		defer sub.Cancel()

		rc := http.NewResponseController(w)
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		send := func(frame ...[]byte) bool {
			_ = rc.SetWriteDeadline(time.Now().Add(writeWait))
			for _, b := range frame {
				if _, err := w.Write(b); err != nil {
					return false
				}
			}
			return rc.Flush() == nil
		}
		if !send([]byte(retry)) {
			return
		}
		tick := time.NewTicker(heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case _, open := <-sub.Ready:
				if !open {
					return
				}
				if b := sub.Next(); b != nil && !send([]byte("data: "), b, []byte("\n\n")) {
					return
				}
			case <-tick.C:
				if !send([]byte(": still here\n\n")) {
					return
				}
			}
		}
	})
}

// problem writes an RFC 9457 problem, as the frontend's API does.
func problem(w http.ResponseWriter, status int, typ, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": problemBase + typ, "title": title, "status": status, "detail": detail,
	})
}
