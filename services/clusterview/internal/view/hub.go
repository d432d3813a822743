package view

import (
	"errors"
	"sync"
)

// ErrFull is the answer to one browser too many.
var ErrFull = errors.New("too many open live views on this pod")

// Hub hands each new snapshot to every subscriber. A subscriber holds at
// most one snapshot it has not sent yet: a slow browser skips to the
// newest state instead of queueing old ones, so a stuck connection costs
// one snapshot of memory, never a backlog, and never slows the others.
type Hub struct {
	max int

	mu     sync.Mutex
	latest []byte
	subs   map[*Subscription]struct{}
	closed bool
}

// NewHub returns a hub that admits at most max subscribers at once.
func NewHub(max int) *Hub {
	return &Hub{max: max, subs: map[*Subscription]struct{}{}}
}

// Subscription is one browser's stream of snapshots.
type Subscription struct {
	hub *Hub
	// Ready has a value whenever Next has a snapshot to give; it is
	// closed when the hub closes.
	Ready chan struct{}

	mu      sync.Mutex
	pending []byte
}

// Subscribe adds a subscriber, primed with the latest snapshot if there is
// one. Cancel it when the browser leaves.
func (h *Hub) Subscribe() (*Subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &Subscription{hub: h, Ready: make(chan struct{}, 1)}
	if h.closed {
		close(s.Ready)
		return s, nil
	}
	if len(h.subs) >= h.max {
		return nil, ErrFull
	}
	h.subs[s] = struct{}{}
	if h.latest != nil {
		s.offer(h.latest)
	}
	return s, nil
}

// Publish gives b, an encoded snapshot, to every subscriber.
func (h *Hub) Publish(b []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.latest = b
	for s := range h.subs {
		s.offer(b)
	}
}

// Close ends every subscription (the server is shutting down: browsers
// reconnect, through the Service, to a pod that is staying).
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for s := range h.subs {
		close(s.Ready)
	}
	h.subs = nil
}

// Watching is how many subscribers there are.
func (h *Hub) Watching() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (s *Subscription) offer(b []byte) {
	s.mu.Lock()
	s.pending = b
	s.mu.Unlock()
	select {
	case s.Ready <- struct{}{}:
	default: // already signalled; Next will take the newest
	}
}

// Next takes the newest snapshot not yet taken, or nil.
func (s *Subscription) Next() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.pending
	s.pending = nil
	return b
}

// Cancel removes the subscriber.
func (s *Subscription) Cancel() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	delete(s.hub.subs, s) // a no-op once Close has dropped them all
}
