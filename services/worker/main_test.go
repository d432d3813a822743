package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/imageproc/imageproctest"
	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
	"github.com/kubelab/kubelab/services/platform/proctest"
)

// These tests run the real worker binaries against a real imageproc, as a
// Job's pods would: several at once, killed, stopped, misconfigured.

type lab struct {
	imageproc *proctest.Proc
	addr      string
	dataDir   string
	images    imageprocv1.ImageServiceClient
	queue     imageprocv1.QueueServiceClient
}

func startLab(t *testing.T) *lab {
	t.Helper()
	srv := imageproctest.Start(t, "imageproc-0", "", "MAX_ATTEMPTS=3", "LOG_LEVEL=debug")
	l := &lab{imageproc: srv.Proc, addr: srv.Addr, dataDir: srv.DataDir}
	l.images, l.queue = srv.Clients(t)
	return l
}

// photos uploads n photos (one content, n rows) and returns their ids.
func (l *lab) photos(t *testing.T, n int, data []byte) []string {
	t.Helper()
	var ids []string
	for i := range n {
		img, err := imageproctest.Upload(t.Context(), l.images, fmt.Sprintf("p%03d.jpg", i), data)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, img.GetId())
	}
	return ids
}

var thumbnail = []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Thumbnail{Thumbnail: &imageprocv1.Thumbnail{Size: 256}}}}

func (l *lab) batch(t *testing.T, ids []string, ops []*imageprocv1.Operation) string {
	t.Helper()
	resp, err := l.queue.SubmitBatch(t.Context(), &imageprocv1.SubmitBatchRequest{ImageIds: ids, Operations: ops})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetBatch().GetId()
}

func (l *lab) progress(t *testing.T, id string) *imageprocv1.Batch {
	t.Helper()
	resp, err := l.queue.GetBatch(t.Context(), &imageprocv1.GetBatchRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetBatch()
}

// worker starts one worker process.
func (l *lab) worker(t *testing.T, name string, env ...string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, name, proctest.Build(t, "."), nil, append([]string{
		"IMAGEPROC_ADDR=" + l.addr, "IMAGEPROC_BALANCING=pick_first", "POD_NAME=" + name, "METRICS_ADDR=",
		"LEASE=3s", "POLL_INTERVAL=200ms", "PROGRESS_INTERVAL=1s", "LOG_LEVEL=debug", "RETRY_BACKOFF=200ms",
	}, env...)...)
}

// completions counts the CompleteTask calls imageproc answered OK: each
// task must be completed exactly once, whoever did it.
func (l *lab) completions() int {
	n := 0
	for line := range strings.SplitSeq(l.imageproc.Log.String(), "\n") {
		if strings.Contains(line, "/imageproc.v1.QueueService/CompleteTask") && strings.Contains(line, `"code":"OK"`) {
			n++
		}
	}
	return n
}

func TestProcessThreeWorkersOneKilledEveryTaskOnce(t *testing.T) {
	l := startLab(t)
	const tasks = 300
	ids := l.photos(t, tasks, pipelinetest.JPEG(1600, 1200, 7))
	batch := l.batch(t, ids, thumbnail)

	var workers []*proctest.Proc
	for i := range 3 {
		workers = append(workers, l.worker(t, fmt.Sprintf("worker-%d", i), "WORKER_CONCURRENCY=1", "CLAIM_BATCH=2"))
	}
	proctest.WaitFor(t, "a fifth of the batch", time.Minute, func() bool { return l.progress(t, batch).GetDone() >= tasks/5 })
	workers[1].Signal(t, syscall.SIGKILL)
	killedAt := l.progress(t, batch)
	t.Logf("killed worker-1 at done=%d leased=%d", killedAt.GetDone(), killedAt.GetLeased())

	for _, i := range []int{0, 2} {
		if code := workers[i].Wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("worker-%d exit %d", i, code)
		}
	}
	b := l.progress(t, batch)
	if b.GetDone() != tasks || b.GetFailed() != 0 || b.GetPending()+b.GetLeased() != 0 {
		t.Fatalf("batch after the run: %v", b)
	}
	if got := l.completions(); got != tasks {
		t.Fatalf("%d successful completions for %d tasks", got, tasks)
	}
	// One variant per photo: redone work stored nothing twice.
	for _, id := range ids {
		img, err := l.images.GetImage(t.Context(), &imageprocv1.GetImageRequest{Id: id})
		if err != nil || len(img.GetVariants()) != 1 || img.GetVariants()[0].GetSpec() != "thumbnail(256)|format(jpeg,85)" {
			t.Fatalf("image %s variants %v (%v)", id, img.GetVariants(), err)
		}
	}
	// The survivors waited for the dead worker's leases instead of exiting
	// early: their last line reports nothing remaining.
	for _, i := range []int{0, 2} {
		if !regexp.MustCompile(`"msg":"finished".*"remaining":0`).MatchString(workers[i].Log.String()) {
			t.Errorf("worker-%d did not finish with an empty queue:\n%s", i, tail(workers[i].Log.String()))
		}
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

func TestProcessSIGTERMReleasesLeasesPromptly(t *testing.T) {
	l := startLab(t)
	ids := l.photos(t, 8, pipelinetest.JPEG(3000, 2000, 3))
	batch := l.batch(t, ids, thumbnail)
	w := l.worker(t, "worker-0", "WORKER_CONCURRENCY=2", "FINISH_TIMEOUT=0s", "LEASE=1m")
	proctest.WaitFor(t, "tasks leased", 20*time.Second, func() bool { return l.progress(t, batch).GetLeased() > 0 })
	sent := time.Now()
	w.Signal(t, syscall.SIGTERM)
	// Not 0: the work is not done, and a Job must start another pod.
	if code := w.Wait(t, 10*time.Second); code != 143 {
		t.Fatalf("exit %d after SIGTERM, want 143", code)
	}
	// Released at once, not after the one-minute lease: another pod can
	// pick them up now.
	b := l.progress(t, batch)
	if b.GetLeased() != 0 || b.GetPending()+b.GetDone() != 8 {
		t.Fatalf("after SIGTERM: %v", b)
	}
	t.Logf("stopped in %v with %d done, %d released", time.Since(sent).Round(time.Millisecond), b.GetDone(), b.GetPending())

	// A released task did not use up an attempt: a new worker finishes all.
	if code := l.worker(t, "worker-1").Wait(t, time.Minute); code != 0 || l.progress(t, batch).GetDone() != 8 {
		t.Fatalf("second worker: exit %d, batch %v", code, l.progress(t, batch))
	}
}

func TestProcessPoisonTaskFailsAfterMaxAttempts(t *testing.T) {
	l := startLab(t)
	ids := l.photos(t, 2, pipelinetest.JPEG(1600, 1200, 5))
	batch := l.batch(t, ids, thumbnail)
	// This worker's MAX_PIXELS is below the photos' 1.9 MP: every attempt
	// fails the same way, as a poison photo would.
	w := l.worker(t, "worker-0", "MAX_PIXELS=1000000")
	if code := w.Wait(t, time.Minute); code != 0 {
		t.Fatalf("a poison task made the worker exit %d; it should record the failure and finish", code)
	}
	b := l.progress(t, batch)
	if b.GetFailed() != 2 || b.GetDone() != 0 || b.GetPending()+b.GetLeased() != 0 {
		t.Fatalf("batch %v", b)
	}
	if n := strings.Count(w.Log.String(), "task failed for good"); n != 2 {
		t.Fatalf("%d final failures logged, want 2", n)
	}
	if n := strings.Count(w.Log.String(), "task failed; it will be retried"); n != 4 { // attempts 1 and 2 of each
		t.Fatalf("%d retried failures logged, want 4", n)
	}
}

// A fault of imageproc's that would repeat is Internal, not Unavailable:
// the worker counts each try as an attempt and backs off, and the task
// ends failed, instead of being given back and claimed again at once,
// forever. The fault here is a real one: imageproc's volume lost the
// directory every upload is written to first, as a full disk would
// refuse them.
func TestProcessImageprocFaultUsesUpAttempts(t *testing.T) {
	l := startLab(t)
	batch := l.batch(t, l.photos(t, 1, pipelinetest.JPEG(320, 240, 9)), thumbnail)
	if err := os.RemoveAll(filepath.Join(l.dataDir, "blobs", "tmp")); err != nil {
		t.Fatal(err)
	}
	w := l.worker(t, "worker-0")
	if code := w.Wait(t, time.Minute); code != 0 {
		t.Fatalf("worker exit %d, want 0: a failed task is data, not a failed Job", code)
	}
	if b := l.progress(t, batch); b.GetFailed() != 1 || b.GetDone()+b.GetPending()+b.GetLeased() != 0 {
		t.Fatalf("batch %v, want the task failed", b)
	}
	// MAX_ATTEMPTS=3: two retries, each after its backoff, then failed.
	if n := strings.Count(w.Log.String(), "task failed; it will be retried"); n != 2 {
		t.Fatalf("%d retries logged, want 2:\n%s", n, tail(w.Log.String()))
	}
	if !strings.Contains(w.Log.String(), `"retry_after":"`) || !strings.Contains(w.Log.String(), "code = Internal") {
		t.Fatalf("the worker log does not show Internal failures retried after a backoff:\n%s", tail(w.Log.String()))
	}
	if n := strings.Count(l.imageproc.Log.String(), `"msg":"upload variant failed"`); n != 3 {
		t.Fatalf("imageproc logged %d upload failures, want 3 (one per attempt)", n)
	}
}

func TestProcessIndexedJobShards(t *testing.T) {
	l := startLab(t)
	batch := l.batch(t, l.photos(t, 20, pipelinetest.JPEG(320, 240, 1)), thumbnail)
	var workers []*proctest.Proc
	for i := range 2 {
		workers = append(workers, l.worker(t, fmt.Sprintf("indexed-%d", i), "SHARD_COUNT=2", fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i)))
	}
	for i, w := range workers {
		if code := w.Wait(t, time.Minute); code != 0 {
			t.Fatalf("indexed-%d exit %d", i, code)
		}
		if !strings.Contains(w.Log.String(), `"msg":"finished","service":"worker"`) || !strings.Contains(w.Log.String(), `"done":10`) {
			t.Fatalf("indexed-%d did not do exactly its half:\n%s", i, tail(w.Log.String()))
		}
	}
	if b := l.progress(t, batch); b.GetDone() != 20 {
		t.Fatalf("batch %v", b)
	}
}

func TestProcessExitCodes(t *testing.T) {
	bin := proctest.Build(t, ".")
	tests := []struct {
		name string
		env  []string
		code int
		says string
	}{
		{"imageproc unreachable: retry", []string{"IMAGEPROC_ADDR=127.0.0.1:1", "IMAGEPROC_BALANCING=pick_first", "IMAGEPROC_WAIT=1s"}, 1, "unreachable"},
		{"shard out of range: configuration", []string{"SHARD_COUNT=2", "JOB_COMPLETION_INDEX=5"}, 2, "SHARD_COUNT"},
		{"bad lease: configuration", []string{"LEASE=1ms"}, 2, "LEASE"},
		{"backoff above its maximum: configuration", []string{"RETRY_BACKOFF=1m", "RETRY_BACKOFF_MAX=1s"}, 2, "RETRY_BACKOFF"},
		{"unknown command", []string{"dance"}, 2, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args, env []string
			for _, e := range tt.env {
				if strings.Contains(e, "=") {
					env = append(env, e)
				} else {
					args = append(args, e)
				}
			}
			start := time.Now()
			p := proctest.Start(t, "worker", bin, args, append([]string{"METRICS_ADDR="}, env...)...)
			if code := p.Wait(t, 30*time.Second); code != tt.code || !strings.Contains(p.Log.String(), tt.says) {
				t.Fatalf("exit %d, want %d with %q in:\n%s", code, tt.code, tt.says, p.Log.String())
			}
			if took := time.Since(start); took > 15*time.Second {
				t.Fatalf("took %v: retries are not bounded", took)
			}
		})
	}
}

func TestProcessMaintain(t *testing.T) {
	l := startLab(t)
	ids := l.photos(t, 3, pipelinetest.JPEG(640, 480, 2))
	// One photo has its thumbnail already, and an old variant to expire.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := l.images.Transform(ctx, &imageprocv1.TransformRequest{ImageId: ids[0], Operations: thumbnail}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.images.Transform(ctx, &imageprocv1.TransformRequest{ImageId: ids[0],
		Operations: []*imageprocv1.Operation{{Op: &imageprocv1.Operation_Grayscale{Grayscale: &imageprocv1.Grayscale{}}}}}); err != nil {
		t.Fatal(err)
	}
	// A blob a crash left behind: written, never recorded, hours ago.
	sum := sha256.Sum256([]byte("orphan"))
	name := hex.EncodeToString(sum[:])
	orphan := filepath.Join(l.dataDir, "blobs", "sha256", name[:2], name)
	if err := os.MkdirAll(filepath.Dir(orphan), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphan, []byte("orphan"), 0o640); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-3 * time.Hour)
	_ = os.Chtimes(orphan, old, old)

	m := proctest.Start(t, "maintain", proctest.Build(t, "."), []string{"maintain"}, "IMAGEPROC_ADDR="+l.addr, "IMAGEPROC_BALANCING=pick_first",
		"METRICS_ADDR=", "POLL_INTERVAL=200ms", "VARIANT_MAX_AGE=1ms", "BLOB_MIN_AGE=1h")
	if code := m.Wait(t, time.Minute); code != 0 {
		t.Fatalf("maintain exit %d", code)
	}
	for _, want := range []string{`"missing":2`, `"expired_variants":1`, `"orphaned_blobs":1`} {
		if !strings.Contains(m.Log.String(), want) {
			t.Errorf("maintain log lacks %s:\n%s", want, m.Log.String())
		}
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatal("the orphaned blob is still there")
	}
	for _, id := range ids {
		img, err := l.images.GetImage(ctx, &imageprocv1.GetImageRequest{Id: id})
		if err != nil || len(img.GetVariants()) != 1 || img.GetVariants()[0].GetSpec() != "thumbnail(256)|format(jpeg,85)" {
			t.Fatalf("image %s after maintenance: %v %v", id, img.GetVariants(), err)
		}
	}
	// A rerun (the next schedule, or a retried pod) finds nothing to do.
	again := proctest.Start(t, "maintain-again", proctest.Build(t, "."), []string{"maintain"}, "IMAGEPROC_ADDR="+l.addr,
		"IMAGEPROC_BALANCING=pick_first", "METRICS_ADDR=", "VARIANT_MAX_AGE=1ms", "BLOB_MIN_AGE=1h")
	if code := again.Wait(t, time.Minute); code != 0 || !strings.Contains(again.Log.String(), `"missing":0`) {
		t.Fatalf("rerun exit %d:\n%s", code, again.Log.String())
	}
}
