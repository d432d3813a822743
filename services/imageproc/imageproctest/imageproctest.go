// Package imageproctest runs the real imageproc binary for the tests of
// the services that call it (frontend, loadgen, worker), and uploads to it
// the way a client does.
package imageproctest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

// Server is a running imageproc.
type Server struct {
	*proctest.Proc
	// Addr is the gRPC address, AdminAddr the probes' and metrics'.
	Addr, AdminAddr string
	// DataDir holds the blobs and the embedded store.
	DataDir string
}

// Start runs imageproc named name (its POD_NAME) on its embedded store,
// serving gRPC on addr ("" picks a free port), with extra environment, and
// waits until it is ready.
func Start(t testing.TB, name, addr string, env ...string) *Server {
	t.Helper()
	if addr == "" {
		addr = proctest.FreeAddr(t)
	}
	s := &Server{Addr: addr, AdminAddr: proctest.FreeAddr(t), DataDir: t.TempDir()}
	s.Proc = proctest.Start(t, name, proctest.Build(t, "github.com/kubelab/kubelab/services/imageproc"), []string{"serve"},
		append([]string{"GRPC_ADDR=" + s.Addr, "ADMIN_ADDR=" + s.AdminAddr, "DATA_DIR=" + s.DataDir, "DATABASE_URL=",
			"POD_NAME=" + name, "DRAIN_DELAY=0s"}, env...)...)
	proctest.WaitFor(t, name+" ready", 20*time.Second, func() bool {
		return proctest.Status("http://"+s.AdminAddr+"/readyz") == http.StatusOK
	})
	return s
}

// Clients returns clients of both services over one connection, closed
// when the test ends.
func (s *Server) Clients(t testing.TB) (imageprocv1.ImageServiceClient, imageprocv1.QueueServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return imageprocv1.NewImageServiceClient(conn), imageprocv1.NewQueueServiceClient(conn)
}

// Upload stores data as a photo named filename: metadata first, then
// chunks of 1 MiB.
func Upload(ctx context.Context, c imageprocv1.ImageServiceClient, filename string, data []byte) (*imageprocv1.Image, error) {
	s, err := c.Upload(ctx)
	if err != nil {
		return nil, err
	}
	// Send errors surface as CloseAndRecv's status.
	_ = s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Metadata{Metadata: &imageprocv1.UploadMetadata{Filename: filename}}})
	for off := 0; off < len(data); off += 1 << 20 {
		_ = s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Chunk{Chunk: data[off:min(off+1<<20, len(data))]}})
	}
	resp, err := s.CloseAndRecv()
	return resp.GetImage(), err
}
