package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
)

// Who may delete a photo: whoever uploaded it. Upload returns a random
// delete token once and the store keeps only its SHA-256, so neither a
// database dump nor a log line can delete anything. imageproc checks the
// token itself rather than trusting its callers: the NetworkPolicy limits
// who reaches imageproc, but any pod it admits (or any cluster without a
// policy-enforcing CNI, such as a default minikube) could otherwise delete
// every photo. A shared secret between the frontend and imageproc would
// also let an admin delete, but would be one more Secret to mount and
// rotate on both sides; a per-photo token needs no configuration at all.

// newDeleteToken returns a token for the uploader and the hash to store.
func newDeleteToken() (token, hash string) {
	token = rand.Text() // 128 bits, base32
	return token, hashDeleteToken(token)
}

func hashDeleteToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// DeleteImage removes an image, its variants and tasks, and their blobs,
// for the holder of its delete token.
func (s *Images) DeleteImage(ctx context.Context, req *imageprocv1.DeleteImageRequest) (*imageprocv1.DeleteImageResponse, error) {
	if req.GetDeleteToken() == "" {
		return nil, status.Error(codes.Unauthenticated, "delete_token: send the token the upload returned")
	}
	img, err := s.store.GetImage(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, "delete image", err)
	}
	// Photos stored before tokens existed have no hash, and match nothing.
	given := hashDeleteToken(req.GetDeleteToken())
	if img.DeleteTokenHash == "" || subtle.ConstantTimeCompare([]byte(given), []byte(img.DeleteTokenHash)) != 1 {
		return nil, status.Error(codes.PermissionDenied, "delete_token: not the token of this photo's upload")
	}
	sums, err := s.store.DeleteImage(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, "delete image", err)
	}
	s.collect(context.WithoutCancel(ctx), sums...)
	return &imageprocv1.DeleteImageResponse{}, nil
}
