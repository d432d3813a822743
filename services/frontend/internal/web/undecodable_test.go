package web

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// A PNG whose header and end marker are whole but whose pixel data is
// garbage passes the upload; the gallery then shows it as a photo that
// cannot be decoded instead of a broken thumbnail.
func TestGalleryShowsAPhotoThatCannotBeDecoded(t *testing.T) {
	h := newHarness(t)
	b := bytes.Clone(pipelinetest.PNG(64, 48, 3))
	for i := 8; i+8 <= len(b); i += 12 + int(binary.BigEndian.Uint32(b[i:])) {
		if string(b[i+4:i+8]) == "IDAT" {
			data := b[i+8 : i+8+int(binary.BigEndian.Uint32(b[i:]))]
			for j := len(data) / 2; j < len(data); j++ {
				data[j] ^= 0x5a
			}
			break
		}
	}
	resp, body := h.do(t, http.MethodPost, "/api/v1/images?filename=broken.png", bytes.NewReader(b), "Content-Type", "image/png")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	id := jsonField(t, body, "image", "id")
	for range 2 { // the first render finds out, the second is answered from the record
		resp, body = h.do(t, http.MethodGet, "/media/"+id+"/thumbnail", nil, "Accept", "application/json")
		assertProblem(t, resp, body, http.StatusConflict, "cannot be decoded")
	}
	resp, body = h.do(t, http.MethodGet, "/", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `class="undecodable"`) || strings.Contains(body, "/media/"+id+"/thumbnail") {
		t.Fatalf("gallery: %d; want the placeholder, not the thumbnail\n%s", resp.StatusCode, body)
	}
}
