// Package storetest is the contract every store.Store must meet. Both the
// PostgreSQL and the SQLite store run it, so code above the store can rely
// on one behaviour whichever is configured.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/kubelab/kubelab/services/imageproc/internal/store"
)

// Factory returns an empty store whose tasks fail after maxAttempts claims.
type Factory func(t *testing.T, maxAttempts int) store.Store

// Run runs the contract against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"ImagesCRUD", testImages},
		{"Pagination", testPagination},
		{"VariantsIdempotent", testVariants},
		{"DeleteCascades", testDelete},
		{"DeleteTokenAndDecodeErrorKept", testImageRecords},
		{"BatchProgress", testBatch},
		{"TasksCarryTheirBatchTraceparent", testBatchTraceparent},
		{"ClaimLeaseComplete", testClaim},
		{"ExpiredLeaseReturns", testExpiry},
		{"FailAndMaxAttempts", testFail},
		{"FailedTaskWaitsForItsRetryTime", testRetryAfter},
		{"ReleaseDoesNotCountAttempt", testRelease},
		{"Shards", testShards},
		{"OpenTasksCountsUnfinishedWork", testOpenTasks},
		{"ExpireVariants", testExpireVariants},
		{"QueueMissingVariants", testQueueMissing},
		{"QueueMissingVariantsConcurrently", testQueueMissingConcurrently},
		{"ConcurrentClaimersNeverShare", testConcurrentClaims},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func image(id string) store.Image {
	return store.Image{ID: id, Filename: id + ".jpg", ContentType: "image/jpeg", SizeBytes: 100, Width: 30, Height: 20,
		SHA256: fmt.Sprintf("%064s", id)}
}

func mustImages(t *testing.T, s store.Store, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("img%05d", i)
		if _, err := s.CreateImage(ctx(t), image(ids[i])); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func testImages(t *testing.T, f Factory) {
	s := f(t, 3)
	c := ctx(t)
	created, err := s.CreateImage(c, image("a1"))
	if err != nil {
		t.Fatal(err)
	}
	if created.CreatedAt.IsZero() {
		t.Fatal("CreatedAt not set")
	}
	got, err := s.GetImage(c, "a1")
	if err != nil || got.Filename != "a1.jpg" || got.Width != 30 || got.SHA256 != image("a1").SHA256 {
		t.Fatalf("GetImage = %+v, %v", got, err)
	}
	if _, err := s.CreateImage(c, image("a1")); err == nil {
		t.Fatal("duplicate ID accepted")
	}
	if _, err := s.GetImage(c, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing image: %v", err)
	}
	if used, err := s.BlobInUse(c, image("a1").SHA256); err != nil || !used {
		t.Fatalf("BlobInUse = %v, %v", used, err)
	}
	if err := s.Ping(c); err != nil {
		t.Fatal(err)
	}
}

func testPagination(t *testing.T, f Factory) {
	s := f(t, 3)
	ids := mustImages(t, s, 7)
	var seen []string
	after := ""
	for page := 0; ; page++ {
		imgs, err := s.ListImages(ctx(t), 3, after)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range imgs {
			seen = append(seen, i.ID)
		}
		if len(imgs) < 3 {
			break
		}
		after = imgs[len(imgs)-1].ID
		if page > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != len(ids) {
		t.Fatalf("saw %v", seen)
	}
	for i, id := range seen { // newest (largest ID) first
		if id != ids[len(ids)-1-i] {
			t.Fatalf("order %v", seen)
		}
	}
}

func testVariants(t *testing.T, f Factory) {
	s := f(t, 3)
	mustImages(t, s, 1)
	c := ctx(t)
	v := store.Variant{ImageID: "img00000", Spec: "thumbnail(256)|format(jpeg,85)", ContentType: "image/jpeg", SizeBytes: 10, Width: 3, Height: 2, SHA256: "v1"}
	first, created, err := s.PutVariant(c, v)
	if err != nil || !created {
		t.Fatalf("first put: %v %v", created, err)
	}
	v.SHA256 = "v2" // a redo with different bytes must not replace the first
	again, created, err := s.PutVariant(c, v)
	if err != nil || created || again.SHA256 != "v1" || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("second put: %+v %v %v", again, created, err)
	}
	if vs, err := s.ListVariants(c, "img00000"); err != nil || len(vs) != 1 {
		t.Fatalf("ListVariants = %v, %v", vs, err)
	}
	if _, _, err := s.PutVariant(c, store.Variant{ImageID: "nope", Spec: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("variant of a missing image: %v", err)
	}
	if _, err := s.GetVariant(c, "img00000", "other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing variant: %v", err)
	}
}

func testDelete(t *testing.T, f Factory) {
	s := f(t, 3)
	mustImages(t, s, 2)
	c := ctx(t)
	if _, _, err := s.PutVariant(c, store.Variant{ImageID: "img00000", Spec: "s", ContentType: "image/png", SHA256: "vsum"}); err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateBatch(c, "b1", "s", nil)
	if err != nil || b.Total != 2 {
		t.Fatalf("batch %+v %v", b, err)
	}
	sums, err := s.DeleteImage(c, "img00000")
	if err != nil || len(sums) != 2 {
		t.Fatalf("DeleteImage = %v, %v", sums, err)
	}
	if used, _ := s.BlobInUse(c, "vsum"); used {
		t.Fatal("variant blob still referenced")
	}
	if b, _ := s.GetBatch(c, "b1"); b.Total != 1 {
		t.Fatalf("tasks of the deleted image remain: %+v", b)
	}
	if _, err := s.DeleteImage(c, "img00000"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// testImageRecords: the delete token's hash is stored with the image, and a
// decode error is recorded for every image with the same content (the
// bytes fail, not the row) and read back by Get and List.
func testImageRecords(t *testing.T, f Factory) {
	s := f(t, 3)
	c := ctx(t)
	a, b, other := image("a1"), image("b1"), image("c1")
	a.DeleteTokenHash = "hash-a"
	b.SHA256 = a.SHA256 // the same photo uploaded twice
	for _, img := range []store.Image{a, b, other} {
		if _, err := s.CreateImage(c, img); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.GetImage(c, "a1"); err != nil || got.DeleteTokenHash != "hash-a" || got.DecodeError != "" {
		t.Fatalf("GetImage = %+v, %v", got, err)
	}
	if err := s.RecordDecodeError(c, a.SHA256, "invalid image: corrupt"); err != nil {
		t.Fatal(err)
	}
	imgs, err := s.ListImages(c, 10, "")
	if err != nil || len(imgs) != 3 {
		t.Fatalf("ListImages = %v, %v", imgs, err)
	}
	for _, img := range imgs {
		want := ""
		if img.SHA256 == a.SHA256 {
			want = "invalid image: corrupt"
		}
		if img.DecodeError != want {
			t.Errorf("%s: DecodeError %q, want %q", img.ID, img.DecodeError, want)
		}
	}
}

func testBatch(t *testing.T, f Factory) {
	s := f(t, 3)
	mustImages(t, s, 3)
	c := ctx(t)
	b, err := s.CreateBatch(c, "b1", "grayscale|format(png)", []string{"img00002", "img00000"})
	if err != nil || b.Total != 2 || b.Pending != 2 || b.Spec != "grayscale|format(png)" {
		t.Fatalf("CreateBatch = %+v, %v", b, err)
	}
	if _, err := s.CreateBatch(c, "b2", "s", []string{"img00000", "ghost"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("batch with unknown image: %v", err)
	}
	if _, err := s.GetBatch(c, "b2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a failed batch left a row behind")
	}
	all, err := s.CreateBatch(c, "b3", "s", nil)
	if err != nil || all.Total != 3 {
		t.Fatalf("batch of every image = %+v, %v", all, err)
	}
	if _, err := s.GetBatch(c, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing batch: %v", err)
	}
}

// testBatchTraceparent: a batch queued inside a trace hands that trace's
// context to each of its tasks, whether queued by id, for every image or
// for missing variants; one queued outside a trace hands on nothing.
func testBatchTraceparent(t *testing.T, f Factory) {
	s := f(t, 3)
	mustImages(t, s, 3)
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0x75, 0x62, 0x65}, SpanID: trace.SpanID{0x6c, 0x61, 0x62}, TraceFlags: trace.FlagsSampled,
	})
	traced := trace.ContextWithSpanContext(ctx(t), sc)
	const want = "00-4b756265000000000000000000000000-6c61620000000000-01"
	if _, err := s.CreateBatch(traced, "by-id", "s1", []string{"img00000"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateBatch(traced, "every", "s2", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.QueueMissing(traced, "missing", "s3", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateBatch(ctx(t), "untraced", "s4", []string{"img00001"}); err != nil {
		t.Fatal(err)
	}
	tasks, err := s.ClaimTasks(ctx(t), store.Claim{Worker: "w", Max: 100, Lease: time.Minute})
	if err != nil || len(tasks) != 8 {
		t.Fatalf("claim = %d tasks, %v; want 8", len(tasks), err)
	}
	for _, tk := range tasks {
		if w := map[bool]string{true: "", false: want}[tk.BatchID == "untraced"]; tk.BatchTraceparent != w {
			t.Errorf("task of batch %s: traceparent %q, want %q", tk.BatchID, tk.BatchTraceparent, w)
		}
	}
}

func testClaim(t *testing.T, f Factory) {
	s := f(t, 3)
	mustImages(t, s, 3)
	c := ctx(t)
	if _, err := s.CreateBatch(c, "b", "s", nil); err != nil {
		t.Fatal(err)
	}
	tasks, err := s.ClaimTasks(c, store.Claim{Worker: "w1", Max: 2, Lease: time.Minute})
	if err != nil || len(tasks) != 2 {
		t.Fatalf("claim = %v, %v", tasks, err)
	}
	for _, tk := range tasks {
		if tk.State != store.Leased || tk.Attempts != 1 || tk.LeaseOwner != "w1" || time.Until(tk.LeaseExpiresAt) < 30*time.Second {
			t.Fatalf("claimed task %+v", tk)
		}
	}
	if tasks[0].ID >= tasks[1].ID {
		t.Fatal("tasks not in queue order")
	}
	until, err := s.RenewLease(c, tasks[0].ID, "w1", 2*time.Minute)
	if err != nil || time.Until(until) < 90*time.Second {
		t.Fatalf("renew = %v, %v", until, err)
	}
	if _, err := s.RenewLease(c, tasks[0].ID, "w2", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("renew by another worker: %v", err)
	}
	if err := s.CompleteTask(c, tasks[0].ID, "w2"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("complete by another worker: %v", err)
	}
	if err := s.CompleteTask(c, tasks[0].ID, "w1"); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteTask(c, tasks[0].ID, "w1"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("completing twice: %v", err)
	}
	rest, err := s.ClaimTasks(c, store.Claim{Worker: "w2", Max: 10, Lease: time.Minute})
	if err != nil || len(rest) != 1 {
		t.Fatalf("second claim = %v, %v", rest, err)
	}
	b, _ := s.GetBatch(c, "b")
	if b.Done != 1 || b.Leased != 2 || b.Pending != 0 {
		t.Fatalf("batch %+v", b)
	}
	if none, err := s.ClaimTasks(c, store.Claim{Worker: "w3", Max: 10, Lease: time.Minute}); err != nil || len(none) != 0 {
		t.Fatalf("claim on an empty queue = %v, %v", none, err)
	}
}

func testExpiry(t *testing.T, f Factory) {
	s := f(t, 3)
	mustImages(t, s, 1)
	c := ctx(t)
	if _, err := s.CreateBatch(c, "b", "s", nil); err != nil {
		t.Fatal(err)
	}
	first, err := s.ClaimTasks(c, store.Claim{Worker: "crashed", Max: 1, Lease: 200 * time.Millisecond})
	if err != nil || len(first) != 1 {
		t.Fatal(first, err)
	}
	if again, _ := s.ClaimTasks(c, store.Claim{Worker: "w2", Max: 1, Lease: time.Minute}); len(again) != 0 {
		t.Fatal("a leased task was claimed twice")
	}
	time.Sleep(300 * time.Millisecond)
	again, err := s.ClaimTasks(c, store.Claim{Worker: "w2", Max: 1, Lease: time.Minute})
	if err != nil || len(again) != 1 || again[0].ID != first[0].ID || again[0].Attempts != 2 {
		t.Fatalf("reclaim after expiry = %+v, %v", again, err)
	}
	if err := s.CompleteTask(c, first[0].ID, "crashed"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("the crashed worker completed a task it lost: %v", err)
	}
}

func testFail(t *testing.T, f Factory) {
	s := f(t, 2)
	mustImages(t, s, 2)
	c := ctx(t)
	if _, err := s.CreateBatch(c, "b", "s", []string{"img00000"}); err != nil {
		t.Fatal(err)
	}
	claim := func() store.Task {
		t.Helper()
		ts, err := s.ClaimTasks(c, store.Claim{Worker: "w", Max: 1, Lease: time.Minute})
		if err != nil || len(ts) != 1 {
			t.Fatalf("claim = %v, %v", ts, err)
		}
		return ts[0]
	}
	tk := claim()
	if st, err := s.FailTask(c, tk.ID, "w", "decode: boom", 0); err != nil || st != store.Pending {
		t.Fatalf("first failure = %v, %v", st, err)
	}
	tk = claim()
	if tk.LastError != "decode: boom" || tk.Attempts != 2 {
		t.Fatalf("retried task %+v", tk)
	}
	if st, err := s.FailTask(c, tk.ID, "w", "decode: boom again", 0); err != nil || st != store.Failed {
		t.Fatalf("last failure = %v, %v", st, err)
	}
	if ts, _ := s.ClaimTasks(c, store.Claim{Worker: "w", Max: 1, Lease: time.Minute}); len(ts) != 0 {
		t.Fatal("a failed task was claimed again")
	}

	// A task whose lease expires on its last attempt fails too: a poison
	// image that crashes every worker must not loop forever.
	if _, err := s.CreateBatch(c, "b2", "s", []string{"img00001"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if ts, err := s.ClaimTasks(c, store.Claim{Worker: "w", Max: 1, Lease: 100 * time.Millisecond}); err != nil || len(ts) != 1 {
			t.Fatalf("claim = %v, %v", ts, err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if ts, _ := s.ClaimTasks(c, store.Claim{Worker: "w", Max: 1, Lease: time.Minute}); len(ts) != 0 {
		t.Fatalf("task claimed after its attempts expired: %+v", ts)
	}
	if b, _ := s.GetBatch(c, "b2"); b.Failed != 1 {
		t.Fatalf("batch %+v, want the task failed", b)
	}
}

func testRetryAfter(t *testing.T, f Factory) {
	s := f(t, 5)
	mustImages(t, s, 3)
	c := ctx(t)
	if _, err := s.CreateBatch(c, "b", "s", nil); err != nil {
		t.Fatal(err)
	}
	ts, err := s.ClaimTasks(c, store.Claim{Worker: "w", Max: 3, Lease: time.Minute})
	if err != nil || len(ts) != 3 {
		t.Fatalf("claim = %v, %v", ts, err)
	}
	later, soon, now := ts[0], ts[1], ts[2]
	const soonAfter = 200 * time.Millisecond
	if st, err := s.FailTask(c, later.ID, "w", "disk full", time.Hour); err != nil || st != store.Pending {
		t.Fatalf("fail = %v, %v", st, err)
	}
	failedAt := time.Now() // no later than the store's own "now" for soon
	if _, err := s.FailTask(c, soon.ID, "w", "disk full", soonAfter); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FailTask(c, now.ID, "w", "disk full", 0); err != nil {
		t.Fatal(err)
	}
	claimed := map[int64]bool{}
	claim := func() {
		t.Helper()
		ts, err := s.ClaimTasks(c, store.Claim{Worker: "w2", Max: 10, Lease: time.Minute})
		answered := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range ts {
			switch {
			case tk.ID == later.ID:
				t.Fatalf("task %d claimed within the hour it must wait", tk.ID)
			case tk.ID == soon.ID && answered.Before(failedAt.Add(soonAfter)):
				t.Fatalf("task %d claimed %v after failing, before its %v", tk.ID, answered.Sub(failedAt), soonAfter)
			}
			claimed[tk.ID] = true
		}
	}
	claim()
	if !claimed[now.ID] {
		t.Fatal("a task failed with no retry time was not claimable at once")
	}
	time.Sleep(time.Until(failedAt.Add(soonAfter + 100*time.Millisecond)))
	claim()
	if !claimed[soon.ID] {
		t.Fatalf("task %d not claimable after its retry time", soon.ID)
	}
	// Waiting is still open work: a worker must not exit while a task
	// will be retried.
	if n, err := s.OpenTasks(c, 0, 0); err != nil || n != 3 {
		t.Fatalf("open tasks = %d, %v; want 3", n, err)
	}
}

func testRelease(t *testing.T, f Factory) {
	s := f(t, 3)
	mustImages(t, s, 1)
	c := ctx(t)
	if _, err := s.CreateBatch(c, "b", "s", nil); err != nil {
		t.Fatal(err)
	}
	ts, _ := s.ClaimTasks(c, store.Claim{Worker: "w", Max: 1, Lease: time.Minute})
	if err := s.ReleaseTask(c, ts[0].ID, "other"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("release by another worker: %v", err)
	}
	if err := s.ReleaseTask(c, ts[0].ID, "w"); err != nil {
		t.Fatal(err)
	}
	again, _ := s.ClaimTasks(c, store.Claim{Worker: "w2", Max: 1, Lease: time.Minute})
	if len(again) != 1 || again[0].Attempts != 1 {
		t.Fatalf("after release: %+v", again)
	}
}

func testShards(t *testing.T, f Factory) {
	s := f(t, 3)
	mustImages(t, s, 9)
	c := ctx(t)
	if _, err := s.CreateBatch(c, "b", "s", nil); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	for shard := range 3 {
		ts, err := s.ClaimTasks(c, store.Claim{Worker: fmt.Sprint("w", shard), Max: 100, Lease: time.Minute, ShardIndex: shard, ShardCount: 3})
		if err != nil || len(ts) != 3 {
			t.Fatalf("shard %d claimed %d: %v", shard, len(ts), err)
		}
		for _, tk := range ts {
			if int(tk.ID%3) != shard {
				t.Fatalf("shard %d got task %d", shard, tk.ID)
			}
			seen[tk.ID]++
		}
	}
	if len(seen) != 9 {
		t.Fatalf("shards covered %d of 9 tasks", len(seen))
	}
}

func testOpenTasks(t *testing.T, f Factory) {
	s := f(t, 3)
	mustImages(t, s, 4)
	c := ctx(t)
	open := func(index, count int) int {
		t.Helper()
		n, err := s.OpenTasks(c, index, count)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if open(0, 0) != 0 {
		t.Fatal("open tasks before any batch")
	}
	if _, err := s.CreateBatch(c, "b", "s", nil); err != nil {
		t.Fatal(err)
	}
	ts, err := s.ClaimTasks(c, store.Claim{Worker: "w", Max: 2, Lease: time.Minute})
	if err != nil || len(ts) != 2 {
		t.Fatalf("claim: %v %v", ts, err)
	}
	// Leased tasks are still open work: a worker must not exit on them.
	if open(0, 0) != 4 || open(0, 2)+open(1, 2) != 4 {
		t.Fatalf("open = %d (shards %d+%d), want 4", open(0, 0), open(0, 2), open(1, 2))
	}
	if err := s.CompleteTask(c, ts[0].ID, "w"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FailTask(c, ts[1].ID, "w", "boom", 0); err != nil {
		t.Fatal(err)
	}
	if open(0, 0) != 3 { // the failed one goes back to pending
		t.Fatalf("open after complete and fail = %d, want 3", open(0, 0))
	}
}

func testExpireVariants(t *testing.T, f Factory) {
	s := f(t, 3)
	mustImages(t, s, 1)
	c := ctx(t)
	for _, spec := range []string{"thumbnail(256)|format(jpeg,85)", "grayscale|format(png)"} {
		if _, _, err := s.PutVariant(c, store.Variant{ImageID: "img00000", Spec: spec, ContentType: "image/png", SHA256: "sum-" + spec}); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing is older than an hour ago.
	if sums, err := s.ExpireVariants(c, time.Now().Add(-time.Hour), nil); err != nil || len(sums) != 0 {
		t.Fatalf("expired %v, %v", sums, err)
	}
	sums, err := s.ExpireVariants(c, time.Now().Add(time.Second), []string{"thumbnail(256)|format(jpeg,85)"})
	if err != nil || len(sums) != 1 || sums[0] != "sum-grayscale|format(png)" {
		t.Fatalf("expired %v, %v; want only the grayscale variant", sums, err)
	}
	if vs, _ := s.ListVariants(c, "img00000"); len(vs) != 1 || vs[0].Spec != "thumbnail(256)|format(jpeg,85)" {
		t.Fatalf("left %+v", vs)
	}
	if used, _ := s.BlobInUse(c, "sum-grayscale|format(png)"); used {
		t.Fatal("the expired variant's blob is still referenced")
	}
}

func testQueueMissing(t *testing.T, f Factory) {
	const thumb = "thumbnail(256)|format(jpeg,85)"
	s := f(t, 1) // one attempt: a failure is final
	ids := mustImages(t, s, 6)
	c := ctx(t)
	put := func(id, spec string) {
		t.Helper()
		if _, _, err := s.PutVariant(c, store.Variant{ImageID: id, Spec: spec, ContentType: "image/jpeg", SHA256: "sum-" + id}); err != nil {
			t.Fatal(err)
		}
	}
	put(ids[0], thumb)                   // has it: skipped
	put(ids[3], "grayscale|format(png)") // has another variant only: queued
	// ids[2]'s task is done but its variant has since expired, ids[4]'s
	// task failed for good: both queued again.
	if _, err := s.CreateBatch(c, "old", thumb, []string{ids[2], ids[4]}); err != nil {
		t.Fatal(err)
	}
	ts, err := s.ClaimTasks(c, store.Claim{Worker: "w", Max: 2, Lease: time.Minute})
	if err != nil || len(ts) != 2 {
		t.Fatalf("claim = %v, %v", ts, err)
	}
	if err := s.CompleteTask(c, ts[0].ID, "w"); err != nil {
		t.Fatal(err)
	}
	if st, err := s.FailTask(c, ts[1].ID, "w", "boom", 0); err != nil || st != store.Failed {
		t.Fatalf("fail = %v, %v", st, err)
	}
	// ids[1] is queued already (a rerun of maintenance before the workers
	// got to it): skipped.
	if _, err := s.CreateBatch(c, "open", thumb, []string{ids[1]}); err != nil {
		t.Fatal(err)
	}
	// ids[5] has nothing: queued.

	if n, err := s.QueueMissing(c, "dry", thumb, true); err != nil || n != 4 {
		t.Fatalf("dry run = %d, %v; want 4", n, err)
	}
	if _, err := s.GetBatch(c, "dry"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a dry run stored its batch: %v", err)
	}
	if n, err := s.OpenTasks(c, 0, 0); err != nil || n != 1 {
		t.Fatalf("open tasks after a dry run = %d, %v; want 1", n, err)
	}
	if n, err := s.QueueMissing(c, "m1", thumb, false); err != nil || n != 4 {
		t.Fatalf("QueueMissing = %d, %v; want 4", n, err)
	}
	if b, err := s.GetBatch(c, "m1"); err != nil || b.Total != 4 || b.Pending != 4 || b.Spec != thumb {
		t.Fatalf("batch %+v, %v", b, err)
	}
	if n, err := s.QueueMissing(c, "m2", thumb, false); err != nil || n != 0 {
		t.Fatalf("second QueueMissing = %d, %v; want 0", n, err)
	}
	if _, err := s.GetBatch(c, "m2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an empty batch was stored: %v", err)
	}
	open, err := s.ClaimTasks(c, store.Claim{Worker: "w", Max: 100, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, tk := range open {
		if tk.Spec != thumb {
			t.Fatalf("task %+v", tk)
		}
		per[tk.ImageID]++
	}
	for i, id := range ids {
		if want := min(i, 1); per[id] != want {
			t.Errorf("image %d has %d open tasks, want %d", i, per[id], want)
		}
	}
}

// Two maintenance runs at once (a manual Job beside the scheduled one)
// still queue each missing variant once between them.
func testQueueMissingConcurrently(t *testing.T, f Factory) {
	const images, runs = 200, 4
	s := f(t, 3)
	mustImages(t, s, images)
	c := ctx(t)
	queued := make(chan int, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			n, err := s.QueueMissing(c, fmt.Sprint("run", i), "s", false)
			if err != nil {
				t.Error(err)
			}
			queued <- n
		})
	}
	wg.Wait()
	close(queued)
	total := 0
	for n := range queued {
		total += n
	}
	open, err := s.OpenTasks(c, 0, 0)
	if err != nil || total != images || open != images {
		t.Fatalf("runs queued %d tasks, %d open (%v); want %d", total, open, err, images)
	}
}

func testConcurrentClaims(t *testing.T, f Factory) {
	const tasks, claimers = 1000, 8
	s := f(t, 3)
	mustImages(t, s, tasks)
	c := ctx(t)
	if _, err := s.CreateBatch(c, "b", "s", nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	owner := map[int64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, claimers)
	for w := range claimers {
		worker := fmt.Sprint("worker-", w)
		wg.Go(func() {
			for round := 0; round < tasks; round++ { // bounded: at most one round per task
				ts, err := s.ClaimTasks(c, store.Claim{Worker: worker, Max: 7, Lease: time.Minute})
				if err != nil {
					errs <- err
					return
				}
				if len(ts) == 0 {
					return
				}
				for _, tk := range ts {
					mu.Lock()
					prev, dup := owner[tk.ID]
					owner[tk.ID] = worker
					mu.Unlock()
					if dup {
						errs <- fmt.Errorf("task %d claimed by %s and %s", tk.ID, prev, worker)
						return
					}
					if err := s.CompleteTask(c, tk.ID, worker); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(owner) != tasks {
		t.Fatalf("%d of %d tasks claimed", len(owner), tasks)
	}
	if b, _ := s.GetBatch(c, "b"); b.Done != tasks {
		t.Fatalf("batch %+v", b)
	}
}
