package web

import (
	"errors"
	"io"
	"net/http"
	"strings"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
)

// Only these types are served as themselves; anything else would be
// downloaded, never rendered (with nosniff, the browser cannot guess).
var imageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

func (s *Server) original(w http.ResponseWriter, r *http.Request) {
	s.serveBlob(w, r, &imageprocv1.DownloadRequest{ImageId: r.PathValue("id")})
}

func (s *Server) variant(w http.ResponseWriter, r *http.Request) {
	spec := r.URL.Query().Get("spec")
	if spec == "" {
		s.fail(w, r, badRequest("error.no-spec"))
		return
	}
	s.serveBlob(w, r, &imageprocv1.DownloadRequest{ImageId: r.PathValue("id"), VariantSpec: spec})
}

// rendition serves one of the sizes the pages show, making it on first
// use: Transform is idempotent and returns the stored variant after that.
func (s *Server) rendition(w http.ResponseWriter, r *http.Request) {
	p, ok := renditions[r.PathValue("rendition")]
	if !ok {
		s.fail(w, r, problemOf(http.StatusNotFound, "not-found", "error.no-rendition"))
		return
	}
	id := r.PathValue("id")
	v, err := s.applyPreset(r.Context(), id, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.serveBlob(w, r, &imageprocv1.DownloadRequest{ImageId: id, VariantSpec: v.GetSpec()})
}

// serveBlob streams a photo or variant from imageproc to the client. The
// content's SHA-256 is its ETag and, since an id (and a variant's spec)
// always names the same bytes, it may be cached forever.
func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, req *imageprocv1.DownloadRequest) {
	ctx, cancel := s.Backend.Stream(r.Context())
	defer cancel()
	stream, err := s.Backend.Images.Download(ctx, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	first, err := stream.Recv()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	info := first.GetInfo()
	if info == nil {
		s.fail(w, r, errors.New("imageproc download did not start with its info"))
		return
	}
	etag := `"` + info.GetSha256() + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h["Cache-Control"] = immutableCache
	if matchETag(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	ct := info.GetContentType()
	if !imageTypes[ct] {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", itoa(info.GetSizeBytes()))
	if r.Method == http.MethodHead {
		return
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			// Headers are gone: all we can do is cut the response short,
			// which the client sees as a truncated body, never a whole one.
			s.Log.WarnContext(r.Context(), "download broke off", "image", req.GetImageId(), "err", err)
			panic(http.ErrAbortHandler)
		}
		if _, err := w.Write(msg.GetChunk()); err != nil {
			return // the client went away
		}
	}
}

func matchETag(header, etag string) bool {
	for c := range strings.SplitSeq(header, ",") {
		if c = strings.TrimSpace(c); c == etag || c == "W/"+etag || c == "*" {
			return true
		}
	}
	return false
}
