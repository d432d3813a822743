package server_test

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// Only the holder of a photo's delete token, which its upload returned,
// may delete it; every other call leaves the photo where it was.
func TestDeleteNeedsTheUploadsToken(t *testing.T) {
	e := start(t, defaultLimits)
	c := ctx(t)
	mine, err := e.uploadResponse(c, "mine.jpg", bytes.NewReader(pipelinetest.JPEG(40, 30, 1)))
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.uploadResponse(c, "other.jpg", bytes.NewReader(pipelinetest.JPEG(40, 30, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if mine.GetDeleteToken() == "" || mine.GetDeleteToken() == other.GetDeleteToken() {
		t.Fatalf("upload tokens %q and %q: want one of its own per upload", mine.GetDeleteToken(), other.GetDeleteToken())
	}
	id := mine.GetImage().GetId()
	for _, tt := range []struct {
		name  string
		token string
		want  codes.Code
	}{
		{"no token", "", codes.Unauthenticated},
		{"a guess", "AAAAAAAAAAAAAAAAAAAAAAAAAA", codes.PermissionDenied},
		{"another photo's token", other.GetDeleteToken(), codes.PermissionDenied},
		{"its own token", mine.GetDeleteToken(), codes.OK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.images.DeleteImage(c, &imageprocv1.DeleteImageRequest{Id: id, DeleteToken: tt.token})
			if status.Code(err) != tt.want {
				t.Fatalf("DeleteImage = %v, want %v", err, tt.want)
			}
			_, err = e.images.GetImage(c, &imageprocv1.GetImageRequest{Id: id})
			if deleted := status.Code(err) == codes.NotFound; deleted != (tt.want == codes.OK) {
				t.Fatalf("after DeleteImage = %v: GetImage = %v", tt.want, err)
			}
		})
	}
	if _, err := e.images.GetImage(c, &imageprocv1.GetImageRequest{Id: other.GetImage().GetId()}); err != nil {
		t.Fatalf("the other photo: %v", err)
	}
}
