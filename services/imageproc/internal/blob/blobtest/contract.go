// Package blobtest is the contract every blob.Store keeps, run against each
// implementation by its own tests: the server behaves the same whichever
// BLOB_STORE holds its photos.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubelab/kubelab/services/imageproc/internal/blob"
)

// Subject is a fresh, empty store under test, with what only its own test
// can do to it.
type Subject struct {
	blob.Store
	// Backdate sets when sum was last committed, as time passing would.
	Backdate func(t *testing.T, sum string, at time.Time)
	// Staged counts what the store's writers have left on disk.
	Staged func(t *testing.T) int
}

// Run runs the contract; open returns a new, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) Subject) {
	for _, tt := range []struct {
		name string
		test func(t *testing.T, s Subject)
	}{
		{"CommitIsContentAddressed", commitIsContentAddressed},
		{"CommitTwiceKeepsOne", commitTwiceKeepsOne},
		{"ConcurrentCommitsKeepOne", concurrentCommitsKeepOne},
		{"ReadSeeksAcrossALargeBlob", readSeeksAcrossALargeBlob},
		{"LimitIsEnforced", limitIsEnforced},
		{"MissingIsNotFound", missingIsNotFound},
		{"RemoveForgets", removeForgets},
		{"WalkListsCommittedBlobs", walkListsCommittedBlobs},
		{"CommitAgainRefreshesTime", commitAgainRefreshesTime},
		{"WalkStopsAtError", walkStopsAtError},
		{"AbortLeavesNothing", abortLeavesNothing},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, open(t)) })
	}
}

func sumOf(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// put commits data and checks the sum Commit returns.
func put(t *testing.T, s blob.Store, data []byte) string {
	t.Helper()
	w, err := s.Create(int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if n, err := w.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	sum, err := w.Commit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum != sumOf(data) {
		t.Fatalf("Commit = %s, want the SHA-256 %s", sum, sumOf(data))
	}
	return sum
}

func read(t *testing.T, s blob.Store, sum string) []byte {
	t.Helper()
	r, err := s.Open(t.Context(), sum)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

type listed struct {
	size      int64
	committed time.Time
}

func walk(t *testing.T, s blob.Store) map[string]listed {
	t.Helper()
	all := map[string]listed{}
	err := s.Walk(t.Context(), func(sum string, size int64, committed time.Time) error {
		if _, dup := all[sum]; dup {
			t.Errorf("Walk listed %s twice", sum)
		}
		all[sum] = listed{size, committed}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func commitIsContentAddressed(t *testing.T, s Subject) {
	data := []byte("a photo, honestly")
	w, err := s.Create(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for _, part := range []string{"a photo, ", "honestly"} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if w.Size() != int64(len(data)) {
		t.Fatalf("Size = %d, want %d", w.Size(), len(data))
	}
	// Before Commit the bytes can be read back (the server validates them
	// there), and nobody else sees them.
	staged, err := io.ReadAll(w.Reader())
	if err != nil || !bytes.Equal(staged, data) {
		t.Fatalf("Reader before Commit = %q, %v", staged, err)
	}
	if _, err := s.Open(t.Context(), sumOf(data)); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open before Commit = %v, want ErrNotFound", err)
	}
	sum, err := w.Commit(t.Context())
	if err != nil || sum != sumOf(data) {
		t.Fatalf("Commit = %q, %v; want %s", sum, err, sumOf(data))
	}
	if got := read(t, s, sum); !bytes.Equal(got, data) {
		t.Fatalf("read back %q", got)
	}
	if _, err := w.Commit(t.Context()); err == nil {
		t.Fatal("a second Commit of one writer succeeded")
	}
}

func commitTwiceKeepsOne(t *testing.T, s Subject) {
	data := []byte("the same bytes")
	first, second := put(t, s, data), put(t, s, data)
	if first != second {
		t.Fatalf("sums %s and %s for the same bytes", first, second)
	}
	if all := walk(t, s); len(all) != 1 || all[first].size != int64(len(data)) {
		t.Fatalf("Walk = %v, want one blob of %d bytes", all, len(data))
	}
	if s.Staged(t) != 0 {
		t.Fatalf("%d staged files left", s.Staged(t))
	}
}

// Two pods storing the same new photo at the same moment both succeed,
// and one copy is kept.
func concurrentCommitsKeepOne(t *testing.T, s Subject) {
	data := random(t, 256<<10)
	const n = 6
	writers := make([]blob.Writer, n)
	for i := range writers {
		w, err := s.Create(int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		writers[i] = w
	}
	sums := make([]string, n)
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i, w := range writers {
		wg.Go(func() {
			start.Wait()
			sums[i], errs[i] = w.Commit(t.Context())
		})
	}
	start.Done()
	wg.Wait()
	for i := range n {
		if errs[i] != nil || sums[i] != sumOf(data) {
			t.Errorf("commit %d = %s, %v", i, sums[i], errs[i])
		}
	}
	if all := walk(t, s); len(all) != 1 {
		t.Fatalf("Walk = %v, want one blob", all)
	}
	if !bytes.Equal(read(t, s, sumOf(data)), data) {
		t.Fatal("read back other bytes")
	}
}

// A blob larger than any one read or chunk reads back whole, from any
// position, as the pipeline reads an original: probe, seek back, decode.
func readSeeksAcrossALargeBlob(t *testing.T, s Subject) {
	data := random(t, 2<<20+12345)
	sum := put(t, s, data)
	r, err := s.Open(t.Context(), sum)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAll: %d bytes, equal %v, %v", len(got), bytes.Equal(got, data), err)
	}
	for _, seek := range []struct {
		offset int64
		whence int
		at     int64
	}{
		{0, io.SeekStart, 0},
		{1<<20 - 3, io.SeekStart, 1<<20 - 3}, // straddles a 1 MiB boundary
		{-10, io.SeekEnd, int64(len(data)) - 10},
		{-(1 << 20), io.SeekCurrent, int64(len(data)) - 1<<20}, // from the end, where the short read left it
	} {
		pos, err := r.Seek(seek.offset, seek.whence)
		if err != nil || pos != seek.at {
			t.Fatalf("Seek(%d, %d) = %d, %v; want %d", seek.offset, seek.whence, pos, err, seek.at)
		}
		buf := make([]byte, 64)
		n, err := io.ReadFull(r, buf)
		want := data[pos:min(pos+64, int64(len(data)))]
		if !bytes.Equal(buf[:n], want) || (err != nil && len(want) == 64) {
			t.Fatalf("after Seek to %d read %d bytes, %v: not the blob's", pos, n, err)
		}
	}
	if _, err := r.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Read(make([]byte, 8)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("Read at the end = %d, %v; want io.EOF", n, err)
	}
}

func limitIsEnforced(t *testing.T, s Subject) {
	w, err := s.Create(10)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	n, err := w.Write(make([]byte, 3))
	if !errors.Is(err, blob.ErrTooLarge) || n != 0 {
		t.Fatalf("Write past the limit = %d, %v; want 0, ErrTooLarge", n, err)
	}
	if w.Size() != 8 {
		t.Fatalf("Size = %d after a refused write, want 8", w.Size())
	}
	if _, err := w.Write(make([]byte, 2)); err != nil {
		t.Fatalf("Write up to the limit exactly: %v", err)
	}
}

func missingIsNotFound(t *testing.T, s Subject) {
	absent := sumOf([]byte("never stored"))
	if _, err := s.Open(t.Context(), absent); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open(absent) = %v, want ErrNotFound", err)
	}
	stored := put(t, s, []byte("stored"))
	for _, sum := range []string{"", "../../etc/passwd", "zz" + string(make([]byte, 62)), strings.ToUpper(stored), stored[:63]} {
		if _, err := s.Open(t.Context(), sum); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Open(%q) = %v, want ErrNotFound", sum, err)
		}
		if err := s.Remove(t.Context(), sum); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Remove(%q) = %v, want ErrNotFound", sum, err)
		}
	}
	if got := read(t, s, stored); string(got) != "stored" {
		t.Fatalf("the stored blob reads %q after the malformed calls", got)
	}
}

func removeForgets(t *testing.T, s Subject) {
	keep, gone := put(t, s, []byte("keep")), put(t, s, []byte("gone"))
	for range 2 { // removing a missing blob is not an error
		if err := s.Remove(t.Context(), gone); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Open(t.Context(), gone); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open after Remove = %v, want ErrNotFound", err)
	}
	if all := walk(t, s); len(all) != 1 || all[keep].size != 4 {
		t.Fatalf("Walk after Remove = %v, want only %s", all, keep)
	}
	// Removed content can be stored again.
	if got := read(t, s, put(t, s, []byte("gone"))); string(got) != "gone" {
		t.Fatalf("stored again, read back %q", got)
	}
}

func walkListsCommittedBlobs(t *testing.T, s Subject) {
	if all := walk(t, s); len(all) != 0 {
		t.Fatalf("a new store lists %v", all)
	}
	want := map[string]int64{}
	for _, data := range [][]byte{[]byte("one"), []byte("two two"), random(t, 70000)} {
		want[put(t, s, data)] = int64(len(data))
	}
	// A blob being written is not listed.
	w, err := s.Create(100)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	_, _ = w.Write([]byte("in flight"))

	all := walk(t, s)
	if len(all) != len(want) {
		t.Fatalf("Walk = %v, want %v", all, want)
	}
	for sum, size := range want {
		if all[sum].size != size {
			t.Errorf("Walk: %s has size %d, want %d", sum, all[sum].size, size)
		}
		// The garbage collector spares blobs younger than an hour at least.
		if age := time.Since(all[sum].committed); age > time.Hour || age < -time.Hour {
			t.Errorf("Walk: %s committed %v ago, want just now", sum, age)
		}
	}
}

// The garbage collector spares blobs committed recently: an upload commits
// its blob, then records its row. A blob stored long ago and committed
// again by a new upload must look recent, or the collector could remove
// it between the two.
func commitAgainRefreshesTime(t *testing.T, s Subject) {
	data := []byte("uploaded again")
	sum := put(t, s, data)
	long := time.Now().Add(-48 * time.Hour)
	s.Backdate(t, sum, long)
	if got := walk(t, s)[sum].committed; got.After(long.Add(time.Hour)) {
		t.Fatalf("Backdate did not take: committed %v", got)
	}
	put(t, s, data)
	if got := walk(t, s)[sum].committed; time.Since(got) > time.Hour {
		t.Fatalf("committed again, Walk still says %v", got)
	}
}

func walkStopsAtError(t *testing.T, s Subject) {
	put(t, s, []byte("a"))
	put(t, s, []byte("b"))
	stop := errors.New("stop")
	calls := 0
	err := s.Walk(t.Context(), func(string, int64, time.Time) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Walk = %v after %d calls; want fn's error after 1", err, calls)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Walk(ctx, func(string, int64, time.Time) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Walk with a cancelled context = %v", err)
	}
}

// An upload refused half way (too large, not an image, the client gone)
// leaves nothing: no blob, nothing staged.
func abortLeavesNothing(t *testing.T, s Subject) {
	data := random(t, 100<<10)
	w, err := s.Create(int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort() // twice: harmless
	if _, err := w.Commit(t.Context()); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if _, err := s.Open(t.Context(), sumOf(data)); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open of an aborted blob = %v, want ErrNotFound", err)
	}
	if all := walk(t, s); len(all) != 0 {
		t.Fatalf("Walk after Abort = %v", all)
	}
	if n := s.Staged(t); n != 0 {
		t.Fatalf("%d staged files left after Abort", n)
	}
}
