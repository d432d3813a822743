package web

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/frontend/internal/locale"
	"github.com/kubelab/kubelab/services/platform/filename"
)

// chunkSize is the size of each upload message to imageproc: big enough to
// keep the per-message cost small, small enough to keep memory flat.
const chunkSize = 64 << 10

// multipartSlack is what a multipart body may add around the file itself.
const multipartSlack = 64 << 10

// maxParts bounds how many form fields are read looking for the file.
const maxParts = 8

func tooLarge(limit int64) *Error {
	return problemOf(http.StatusRequestEntityTooLarge, "too-large", "error.too-large-upload", "Limit", locale.Limit(limit))
}

// readUpload finds the photo in r: the "file" part of a multipart form, or
// for the API a raw image body named by ?filename=. Nothing is buffered:
// the returned reader is the request body itself. The name is as the
// client sent it.
func readUpload(r *http.Request) (name string, body io.Reader, err error) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return "", nil, badRequest("error.no-content-type")
	}
	if mediaType != "multipart/form-data" {
		if !strings.HasPrefix(mediaType, "image/") && mediaType != "application/octet-stream" {
			return "", nil, problemOf(http.StatusUnsupportedMediaType, "unsupported-media-type", "error.not-a-photo", "Type", mediaType)
		}
		return r.URL.Query().Get("filename"), r.Body, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return "", nil, unreadable(err)
	}
	for range maxParts {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", nil, unreadable(err)
		}
		if part.FormName() == "file" {
			if part.FileName() == "" {
				return "", nil, badRequest("error.choose-photo")
			}
			return part.FileName(), part, nil
		}
	}
	return "", nil, badRequest("error.no-file-field")
}

// unreadable is a form that could not be read: a client's mistake, unless
// the body stopped arriving (pace.go).
func unreadable(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return badRequest("error.unreadable-multipart", "Err", err.Error())
}

// upload streams the photo in r to imageproc in chunks, enforcing the live
// upload limit as it goes. If anything fails midway the stream is
// cancelled and imageproc keeps nothing.
func (s *Server) upload(r *http.Request) (*imageprocv1.UploadResponse, error) {
	limit := s.Live().Settings.UploadLimit
	if r.ContentLength > limit+multipartSlack {
		return nil, tooLarge(limit) // refuse before reading a byte
	}
	r.Body = http.MaxBytesReader(nil, r.Body, limit+multipartSlack)
	name, body, err := readUpload(r)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.Backend.Stream(r.Context())
	defer cancel()
	// imageproc cleans the name as well (gRPC clients reach it directly),
	// but a name that is not UTF-8 could not even travel in a protobuf
	// string.
	return sendUpload(ctx, s.Backend.Images, filename.Clean(name), body, limit)
}

func sendUpload(ctx context.Context, images imageprocv1.ImageServiceClient, name string, body io.Reader, limit int64) (*imageprocv1.UploadResponse, error) {
	stream, err := images.Upload(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Metadata{
		Metadata: &imageprocv1.UploadMetadata{Filename: name}}}); err != nil {
		return nil, closeErr(stream, err)
	}
	buf := make([]byte, chunkSize)
	msg := &imageprocv1.UploadRequest{}
	var total int64
	for {
		n, rerr := io.ReadFull(body, buf)
		end := errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF)
		if rerr != nil && !end {
			// The body failing is the answer, before the bytes read with
			// it are sent: net/http cancels the request's context on a
			// read error (a client too slow, for one), so imageproc's
			// stream would report only "canceled".
			return nil, bodyErr(rerr, limit)
		}
		if n > 0 {
			if total += int64(n); total > limit {
				return nil, tooLarge(limit)
			}
			msg.Data = &imageprocv1.UploadRequest_Chunk{Chunk: buf[:n]}
			if err := stream.Send(msg); err != nil {
				return nil, closeErr(stream, err)
			}
		}
		if end {
			break
		}
	}
	if total == 0 {
		return nil, badRequest("error.empty-photo")
	}
	return stream.CloseAndRecv()
}

// bodyErr is what a request body that failed with err tells the client.
func bodyErr(err error, limit int64) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return tooLarge(limit)
	}
	var e *Error
	if errors.As(err, &e) {
		return e // too slow (pace.go)
	}
	return badRequest("error.upload-read", "Err", err.Error())
}

// closeErr: when Send fails, the stream's real status comes from the
// receive side (Send only reports io.EOF).
func closeErr(stream imageprocv1.ImageService_UploadClient, err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := stream.CloseAndRecv(); rerr != nil {
			return rerr
		}
	}
	return err
}
