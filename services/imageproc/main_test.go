package main_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
	"github.com/kubelab/kubelab/services/platform/pgtest"
)

// These tests build the real binary and run it as a pod would: configured
// by environment, probed over HTTP, stopped with SIGTERM.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "imageproc-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "imageproc")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type proc struct {
	cmd       *exec.Cmd
	grpcAddr  string
	adminAddr string
	log       *bytes.Buffer
	exited    chan error
}

func startProc(t *testing.T, env ...string) *proc {
	t.Helper()
	p := &proc{grpcAddr: freeAddr(t), adminAddr: freeAddr(t), log: &bytes.Buffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(binary(t), "serve")
	p.cmd.Env = append(os.Environ(), "GRPC_ADDR="+p.grpcAddr, "ADMIN_ADDR="+p.adminAddr, "DATA_DIR="+t.TempDir(),
		"POD_NAME=imageproc-proc-test", "DATABASE_URL=", "OTEL_EXPORTER_OTLP_ENDPOINT=")
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("imageproc log:\n%s", p.log.String())
		}
	})
	waitFor(t, "readiness", func() bool { return p.readyz() == http.StatusOK })
	return p
}

func (p *proc) readyz() int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + p.adminAddr + "/readyz")
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func (p *proc) client(t *testing.T) imageprocv1.ImageServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return imageprocv1.NewImageServiceClient(conn)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func upload(ctx context.Context, c imageprocv1.ImageServiceClient, data []byte) (*imageprocv1.Image, error) {
	s, err := c.Upload(ctx)
	if err != nil {
		return nil, err
	}
	_ = s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Metadata{Metadata: &imageprocv1.UploadMetadata{Filename: "p.jpg"}}})
	_ = s.Send(&imageprocv1.UploadRequest{Data: &imageprocv1.UploadRequest_Chunk{Chunk: data}})
	resp, err := s.CloseAndRecv()
	return resp.GetImage(), err
}

func TestProcessSIGTERMDrainsAndExitsZero(t *testing.T) {
	const drain = 1500 * time.Millisecond
	p := startProc(t, "DRAIN_DELAY="+drain.String(), "SHUTDOWN_TIMEOUT=5s")
	c := p.client(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	photo := pipelinetest.JPEG(1600, 1200, 9)
	img, err := upload(ctx, c, photo)
	if err != nil {
		t.Fatal(err)
	}

	// A steady stream of requests, bounded in count, runs across the signal.
	type result struct {
		at  time.Time
		err error
	}
	results := make(chan result, 200)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			_, err := c.GetImage(ctx, &imageprocv1.GetImageRequest{Id: img.GetId()})
			results <- result{time.Now(), err}
			if err != nil {
				return
			}
			// A transform now and then is a longer in-flight call.
			if i%20 == 0 {
				size := int32(100 + i)
				_, err = c.Transform(ctx, &imageprocv1.TransformRequest{ImageId: img.GetId(),
					Operations: []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Thumbnail{Thumbnail: &imageprocv1.Thumbnail{Size: size}}}}})
				results <- result{time.Now(), err}
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	time.Sleep(200 * time.Millisecond)

	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Readiness flips first, well before the drain ends.
	waitFor(t, "readyz 503 after SIGTERM", func() bool { return p.readyz() == http.StatusServiceUnavailable })
	if flipped := time.Since(sent); flipped > drain/2 {
		t.Fatalf("readiness flipped %v after SIGTERM; want at once", flipped)
	}
	wg.Wait()
	close(results)
	var ok int
	for r := range results {
		if r.err == nil {
			ok++
		} else if r.at.Before(sent.Add(drain)) {
			t.Errorf("request failed during the drain: %v", r.err)
		}
	}
	// The point is above (nothing failed while draining); this only checks
	// traffic really ran across the signal, even on a slow machine.
	if ok < 20 {
		t.Fatalf("only %d requests succeeded", ok)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit: %v, want status 0", err)
		}
	case <-time.After(drain + 5*time.Second + 2*time.Second):
		t.Fatal("did not exit within DRAIN_DELAY + SHUTDOWN_TIMEOUT")
	}
	if elapsed := time.Since(sent); elapsed < drain {
		t.Fatalf("exited %v after SIGTERM, before the drain delay", elapsed)
	}
}

func TestProcessBadConfigNamesVariable(t *testing.T) {
	cmd := exec.Command(binary(t), "serve")
	cmd.Env = append(os.Environ(), "MAX_UPLOAD_BYTES=lots")
	out, err := cmd.CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("MAX_UPLOAD_BYTES")) {
		t.Fatalf("err = %v, output %s; want a failure naming MAX_UPLOAD_BYTES", err, out)
	}
}

func TestProcessHealthSubcommand(t *testing.T) {
	p := startProc(t, "DRAIN_DELAY=0s")
	cmd := exec.Command(binary(t), "health")
	cmd.Env = append(os.Environ(), "GRPC_ADDR="+p.grpcAddr)
	if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("SERVING")) {
		t.Fatalf("health = %v: %s", err, out)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.exited; err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	cmd = exec.Command(binary(t), "health")
	cmd.Env = append(os.Environ(), "GRPC_ADDR="+p.grpcAddr)
	if err := cmd.Run(); err == nil {
		t.Fatal("health succeeded with the server stopped")
	}
}

// TestProcessPostgres runs the binary as Kubernetes does with a database:
// `imageproc migrate` (the initContainer, twice, as two pods' would), then
// the server on PostgreSQL, and refuses to serve an unmigrated database.
func TestProcessPostgres(t *testing.T) {
	srv := pgtest.Start(t)

	unmigrated := startCmd(t, "serve", "DATABASE_URL="+srv.URL(t, "fresh"), "DATABASE_WAIT=1s",
		"GRPC_ADDR="+freeAddr(t), "ADMIN_ADDR="+freeAddr(t), "DATA_DIR="+t.TempDir())
	// It waits DATABASE_WAIT for the schema, then exits naming the fix.
	if out, err := unmigrated.CombinedOutput(); err == nil || !bytes.Contains(out, []byte("imageproc migrate")) {
		t.Fatalf("serve on an unmigrated database: %v\n%s", err, out)
	}

	url := srv.URL(t, "kubelab")
	for range 2 {
		if out, err := startCmd(t, "migrate", "DATABASE_URL="+url).CombinedOutput(); err != nil {
			t.Fatalf("migrate: %v\n%s", err, out)
		}
	}
	p := startProc(t, "DATABASE_URL="+url)
	c := p.client(t)
	img, err := upload(t.Context(), c, pipelinetest.JPEG(320, 240, 3))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetImage(t.Context(), &imageprocv1.GetImageRequest{Id: img.GetId()})
	if err != nil || got.GetImage().GetWidth() != 320 {
		t.Fatalf("GetImage on PostgreSQL = %v, %v", got, err)
	}
}

func startCmd(t *testing.T, command string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary(t), command)
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}
