package view

import (
	"errors"
	"testing"
)

func TestHubGivesEachSubscriberTheNewestSnapshot(t *testing.T) {
	h := NewHub(2)
	h.Publish([]byte("1"))
	a, err := h.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	// A new subscriber starts from the latest snapshot.
	<-a.Ready
	if got := string(a.Next()); got != "1" {
		t.Fatalf("first snapshot %q, want 1", got)
	}
	// A subscriber that does not keep up skips to the newest: no backlog.
	h.Publish([]byte("2"))
	h.Publish([]byte("3"))
	<-a.Ready
	if got := string(a.Next()); got != "3" {
		t.Fatalf("after two publishes %q, want 3", got)
	}
	if got := a.Next(); got != nil {
		t.Fatalf("nothing new, yet Next gave %q", got)
	}
	select {
	case <-a.Ready:
		t.Fatal("Ready signalled with nothing new")
	default:
	}
}

func TestHubAdmitsAtMostMaxAndClosesEveryone(t *testing.T) {
	h := NewHub(2)
	a, _ := h.Subscribe()
	b, _ := h.Subscribe()
	if _, err := h.Subscribe(); !errors.Is(err, ErrFull) {
		t.Fatalf("third subscriber: %v, want ErrFull", err)
	}
	b.Cancel()
	c, err := h.Subscribe()
	if err != nil {
		t.Fatalf("after one left: %v", err)
	}
	if n := h.Watching(); n != 2 {
		t.Fatalf("watching %d, want 2", n)
	}
	h.Close()
	for name, s := range map[string]*Subscription{"a": a, "c": c} {
		if _, open := <-s.Ready; open {
			t.Errorf("subscriber %s still open after Close", name)
		}
	}
	h.Publish([]byte("late")) // no panic on closed subscriptions
	late, err := h.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	if _, open := <-late.Ready; open {
		t.Error("a subscription after Close is open")
	}
	late.Cancel()
}
