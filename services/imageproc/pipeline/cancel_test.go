package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/kubelab/kubelab/services/imageproc/pipeline/pipelinetest"
)

// tripwire is a context that cancels itself at its n-th look (a call of
// Done), and counts the looks: a run on it shows where the pipeline looks
// and that each look stops it, without any timing.
type tripwire struct {
	context.Context
	cancel context.CancelFunc
	looks  int
	at     int // 0: never
}

func newTripwire(at int) *tripwire {
	ctx, cancel := context.WithCancel(context.Background())
	return &tripwire{Context: ctx, cancel: cancel, at: at}
}

func (t *tripwire) Done() <-chan struct{} {
	t.looks++
	if t.looks == t.at {
		t.cancel()
	}
	return t.Context.Done()
}

// Cancelling at any look ends the run at that very look with the
// context's error, wherever it is: reading the file, shrinking, filtering
// rows, between operations.
func TestRunStopsAtEveryLookAtTheContext(t *testing.T) {
	data := pipelinetest.JPEG(480, 320, 3)
	spec, err := ParseSpec("thumbnail(240)|blur(2)|sharpen(1,1)|grayscale|format(png)")
	if err != nil {
		t.Fatal(err)
	}
	whole := newTripwire(0)
	if _, err := Run(whole, io.Discard, bytes.NewReader(data), spec, Limits{MaxPixels: testMaxPixels}); err != nil {
		t.Fatal(err)
	}
	// Each of the two blurs filters 160 rows and looks before each.
	if whole.looks < 320 {
		t.Fatalf("a whole run looked at its context %d times; want one look per row at least", whole.looks)
	}
	for at := 1; at <= whole.looks; at += max(1, whole.looks/40) {
		ctx := newTripwire(at)
		_, err := Run(ctx, io.Discard, bytes.NewReader(data), spec, Limits{MaxPixels: testMaxPixels})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled at look %d of %d: err = %v, want context.Canceled", at, whole.looks, err)
		}
		if ctx.looks != at {
			t.Fatalf("cancelled at look %d: it looked %d times, want it to stop at once", at, ctx.looks)
		}
	}
}

// Inside one long operation the looks come row by row: a blur of a
// 600-row image looks at least 600 times, so the time between two looks
// is one row's work.
func TestBlurLooksAtEachRow(t *testing.T) {
	src := pipelinetest.Photo(50, 600, 4)
	ctx := newTripwire(0)
	if _, err := gaussian(ctx, src, 3); err != nil {
		t.Fatal(err)
	}
	if ctx.looks < 600 {
		t.Fatalf("blur of 600 rows looked %d times", ctx.looks)
	}
	// And decoding looks at each read of its input.
	ctx = newTripwire(0)
	if _, err := decodeProbed(ctx, bytes.NewReader(pipelinetest.PNG(400, 300, 5)), Info{Orientation: 1}, 1); err != nil {
		t.Fatal(err)
	}
	if ctx.looks < 2 {
		t.Fatalf("decoding looked %d times", ctx.looks)
	}
}
