package main_test

import (
	"bytes"
	"context"
	"errors"
	"io"
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
	"github.com/kubelab/kubelab/services/platform/proctest"
)

// These tests build the real binary and run it as a pod would: configured
// by environment, probed over HTTP, stopped with SIGTERM.

func binary(t *testing.T) string { return proctest.Build(t, ".") }

type proc struct {
	*proctest.Proc
	grpcAddr  string
	adminAddr string
}

func startProc(t *testing.T, env ...string) *proc {
	t.Helper()
	p := &proc{grpcAddr: proctest.FreeAddr(t), adminAddr: proctest.FreeAddr(t)}
	p.Proc = proctest.Start(t, "imageproc", binary(t), []string{"serve"},
		append([]string{"GRPC_ADDR=" + p.grpcAddr, "ADMIN_ADDR=" + p.adminAddr, "DATA_DIR=" + t.TempDir(),
			"POD_NAME=imageproc-proc-test", "DATABASE_URL="}, env...)...)
	waitFor(t, "readiness", func() bool { return p.readyz() == http.StatusOK })
	return p
}

func (p *proc) readyz() int { return proctest.Status("http://" + p.adminAddr + "/readyz") }

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
	proctest.WaitFor(t, what, 15*time.Second, cond)
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
	// Room for every result (200 reads and a transform every 20th), so
	// that the loop never blocks on a full channel: it may well finish
	// before the server stops.
	const reads = 200
	results := make(chan result, reads+reads/20)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range reads {
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
	p.Signal(t, syscall.SIGTERM)
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
	if code := p.Wait(t, drain+5*time.Second+2*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
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

// A BLOB_STORE the binary does not know, or postgres with no database to
// put the blobs in or no temp dir to stage them in, stops it at start with
// a message saying what to fix.
func TestProcessBadBlobStoreSaysWhatToFix(t *testing.T) {
	noTmp := filepath.Join(t.TempDir(), "absent")
	for _, tt := range []struct {
		env  []string
		says string
	}{
		{[]string{"BLOB_STORE=s3"}, `BLOB_STORE="s3": want dir`},
		{[]string{"BLOB_STORE=postgres", "DATABASE_URL="}, "BLOB_STORE=postgres keeps blobs in PostgreSQL, but DATABASE_URL is unset"},
		{[]string{"BLOB_STORE=postgres", "DATABASE_URL=postgres://db/kubelab", "MAX_UPLOAD_BYTES=2147483648"}, "MAX_UPLOAD_BYTES must be at most"},
		// No database answers here: the temp dir is checked before the
		// wait for one.
		{[]string{"BLOB_STORE=postgres", "DATABASE_URL=postgres://127.0.0.1:1/kubelab", "TMPDIR=" + noTmp}, "stages uploads in " + noTmp},
	} {
		// Were the setting accepted, the server would run: the deadline
		// only ends that, and the output then says nothing wanted.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		cmd := exec.CommandContext(ctx, binary(t), "serve")
		cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=", "DATA_DIR="+t.TempDir(),
			"GRPC_ADDR="+proctest.FreeAddr(t), "ADMIN_ADDR="+proctest.FreeAddr(t))
		cmd.Env = append(cmd.Env, tt.env...)
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil || !bytes.Contains(out, []byte(tt.says)) {
			t.Errorf("%v: err = %v, output %s; want a failure saying %q", tt.env, err, out, tt.says)
		}
	}
}

func TestProcessHealthSubcommand(t *testing.T) {
	p := startProc(t, "DRAIN_DELAY=0s")
	cmd := exec.Command(binary(t), "health")
	cmd.Env = append(os.Environ(), "GRPC_ADDR="+p.grpcAddr)
	if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("SERVING")) {
		t.Fatalf("health = %v: %s", err, out)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
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
		"GRPC_ADDR="+proctest.FreeAddr(t), "ADMIN_ADDR="+proctest.FreeAddr(t), "DATA_DIR="+t.TempDir())
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

// TestProcessBlobsInPostgres runs two replicas as two nodes would: no
// volume between them (each DATA_DIR is unusable: a path under a file),
// blobs in PostgreSQL. A photo uploaded through one is downloaded and
// transformed through the other, and the variant read back through the
// first; uploads staged in TMPDIR leave nothing there.
func TestProcessBlobsInPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.URL(t, "blobs")
	if out, err := startCmd(t, "migrate", "DATABASE_URL="+url).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	replica := func() (imageprocv1.ImageServiceClient, string) {
		tmp := t.TempDir()
		p := startProc(t, "DATABASE_URL="+url, "BLOB_STORE=postgres", "DATA_DIR="+filepath.Join(notADir, "data"), "TMPDIR="+tmp)
		return p.client(t), tmp
	}
	a, tmpA := replica()
	b, tmpB := replica()

	photo := pipelinetest.JPEG(640, 480, 5)
	img, err := upload(t.Context(), a, photo)
	if err != nil {
		t.Fatal(err)
	}
	if got := download(t, b, img.GetId(), ""); !bytes.Equal(got, photo) {
		t.Fatalf("downloaded %d bytes through the other replica, want the %d uploaded", len(got), len(photo))
	}
	tr, err := b.Transform(t.Context(), &imageprocv1.TransformRequest{ImageId: img.GetId(),
		Operations: []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Thumbnail{Thumbnail: &imageprocv1.Thumbnail{Size: 64}}}}})
	if err != nil {
		t.Fatal(err)
	}
	variant := download(t, a, img.GetId(), tr.GetVariant().GetSpec())
	if int64(len(variant)) != tr.GetVariant().GetSizeBytes() || len(variant) == 0 {
		t.Fatalf("variant: %d bytes read back, %d rendered", len(variant), tr.GetVariant().GetSizeBytes())
	}
	for _, tmp := range []string{tmpA, tmpB} {
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("staging left %d files in %s", len(left), tmp)
		}
	}
}

func download(t *testing.T, c imageprocv1.ImageServiceClient, id, spec string) []byte {
	t.Helper()
	s, err := c.Download(t.Context(), &imageprocv1.DownloadRequest{ImageId: id, VariantSpec: spec})
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("download %s %q: %v", id, spec, err)
		}
		got = append(got, m.GetChunk()...)
	}
}

func startCmd(t *testing.T, command string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary(t), command)
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}
