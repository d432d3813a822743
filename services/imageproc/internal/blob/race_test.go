package blob

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// childRoot, when set, makes this test binary the second pod of the race
// below rather than the test itself.
const childRoot = "KUBELAB_BLOB_RACE_ROOT"

// A pod starting on the shared volume sweeps the tmp directories whose
// lock it can take. Another pod, a separate process, is between creating
// its own tmp directory and locking it: the sweep must leave that
// directory alone, and the other pod must go on to store a blob.
func TestSweepSparesADirectoryBeingCreated(t *testing.T) {
	if root := os.Getenv(childRoot); root != "" {
		raceChild(root)
		return
	}
	root := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestSweepSparesADirectoryBeingCreated$")
	child.Env = append(os.Environ(), childRoot+"="+root)
	child.Stderr = os.Stderr
	toChild, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	fromChild, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(fromChild)
	said := func() string {
		for lines.Scan() {
			if line, ok := strings.CutPrefix(lines.Text(), "child: "); ok {
				return line
			}
		}
		return "exited"
	}
	if got := said(); !strings.HasPrefix(got, "created ") {
		_ = child.Wait()
		t.Fatalf("child: %s", got)
	}

	// The child's directory exists, unlocked: this process starts now.
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	_, _ = io.WriteString(toChild, "go on\n")
	got := said()
	_, _ = io.Copy(io.Discard, fromChild)
	if err := child.Wait(); err != nil || got != "stored a blob" {
		t.Fatalf("the other pod, after this one's sweep: %q (%v)", got, err)
	}
}

// raceChild opens the blob directory as a second pod would, pausing where
// its tmp directory exists but is not locked yet until told to go on, and
// reports on stdout.
func raceChild(root string) {
	testHookBeforeLock = func(dir string) {
		fmt.Println("child: created", dir)
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	}
	fail := func(err error) {
		fmt.Println("child:", err)
		os.Exit(1)
	}
	d, err := Open(root)
	if err != nil {
		fail(err)
	}
	w, err := d.Create(100)
	if err != nil {
		fail(err)
	}
	if _, err := w.Write([]byte("in flight")); err != nil {
		fail(err)
	}
	if _, err := w.Commit(context.Background()); err != nil {
		fail(err)
	}
	if err := d.Close(); err != nil {
		fail(err)
	}
	fmt.Println("child: stored a blob")
	os.Exit(0)
}
