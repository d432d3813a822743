package server

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// corruptPNG is a PNG whose header and end marker are whole but whose
// pixel data (the IDAT chunks) is garbage: it passes the upload's checks
// and fails only a full decode.
func corruptPNG(t *testing.T) []byte {
	t.Helper()
	b := bytes.Clone(pipelinetest.PNG(64, 48, 3))
	for i := 8; i+8 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[i:]))
		if string(b[i+4:i+8]) == "IDAT" {
			data := b[i+8 : i+8+n]
			for j := range data[len(data)/2:] {
				data[len(data)/2+j] ^= 0x5a
			}
			return b
		}
		i += 12 + n // length, type, data, CRC
	}
	t.Fatal("the test PNG has no IDAT chunk")
	return nil
}

// A photo that cannot be decoded is found out once: the failure is
// recorded, later transforms answer from the record without running the
// pipeline again, and the image says why, for the gallery to show.
func TestUndecodablePhotoIsDecodedOnce(t *testing.T) {
	w := serveWatched(t, Limits{MaxUploadBytes: 8 << 20, MaxPixels: 20_000_000, Transforms: 2}, nil)
	id := w.upload(t, corruptPNG(t))
	for i := range 2 {
		_, err := w.client.Transform(t.Context(), &imageprocv1.TransformRequest{ImageId: id, Operations: thumbnail(256)})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "cannot be decoded") {
			t.Fatalf("transform %d: %v, want FailedPrecondition saying it cannot be decoded", i+1, err)
		}
		if runs := w.runs.Load(); runs != 1 {
			t.Fatalf("after transform %d: %d pipeline runs, want 1", i+1, runs)
		}
	}
	got, err := w.client.GetImage(t.Context(), &imageprocv1.GetImageRequest{Id: id})
	if err != nil || got.GetImage().GetDecodeError() == "" {
		t.Fatalf("GetImage = %v, %v; want its decode_error", got, err)
	}
	// A photo that decodes is not marked by its render.
	good := w.upload(t, pipelinetest.PNG(64, 48, 3))
	if _, err := w.client.Transform(t.Context(), &imageprocv1.TransformRequest{ImageId: good, Operations: thumbnail(256)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.client.GetImage(t.Context(), &imageprocv1.GetImageRequest{Id: good}); got.GetImage().GetDecodeError() != "" {
		t.Fatalf("a good photo was marked: %q", got.GetImage().GetDecodeError())
	}
}
