package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
)

// slot is one generation slot: a session (KV cache), made on first use, and
// the tokens its cache probably holds. The runtime reuses the longest cached
// prefix of a new prompt, so a follow-up chat turn is cheapest on the slot
// that ran the previous turn; cached only guides that choice, the session
// itself checks what it really holds.
type slot struct {
	sess   Session
	cached []int
}

// slots bounds concurrent generations and the queue in front of them.
// A request is admitted (or refused) before any work is done on it; an
// admitted request tokenizes its prompt, taking one of Parallel tokenizer
// turns, then waits for a slot. Requests that find no idle slot wait in FIFO
// order; a released slot goes straight to the longest waiting request.
type slots struct {
	mu       sync.Mutex
	idle     []*slot
	waiters  []chan *slot // each buffered (1): a release never blocks; closed by drain
	running  int
	admitted int // requests between admit and leave: preparing, queued or running
	limit    int // admitted at most: Parallel + QueueSize
	draining bool
	drained  chan struct{} // closed by drain
	prepare  chan struct{} // tokenizer turns: Parallel at once
	newSess  func() (Session, error)
}

func newSlots(parallel, queue int, newSess func() (Session, error)) *slots {
	s := &slots{limit: parallel + queue, newSess: newSess, drained: make(chan struct{}), prepare: make(chan struct{}, parallel)}
	for range parallel {
		s.idle = append(s.idle, &slot{})
	}
	return s
}

var (
	errQueueFull = &apiError{Status: http.StatusTooManyRequests, Type: typeRateLimit, Code: "queue_full",
		Message: "server is busy: all generation slots are in use and the queue is full; retry later"}
	errShuttingDown = &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "shutting_down",
		Message: "server is shutting down"}
)

// admit reserves room for one request (a slot or a place in the queue)
// before anything costly is done for it: errQueueFull when there is none,
// errShuttingDown once draining. Every admitted request calls leave.
func (s *slots) admit() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return errShuttingDown
	case s.admitted >= s.limit:
		return errQueueFull
	}
	s.admitted++
	return nil
}

// leave ends an admitted request.
func (s *slots) leave() {
	s.mu.Lock()
	s.admitted--
	s.mu.Unlock()
}

// prepareTurn runs work (tokenizing a prompt) when one of the Parallel
// tokenizer turns is free, so that admitted requests do not all burn CPU at
// once. It gives up with ctx's error or errShuttingDown.
func (s *slots) prepareTurn(ctx context.Context, work func()) error {
	select {
	case s.prepare <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.drained:
		return errShuttingDown
	}
	defer func() { <-s.prepare }()
	work()
	return nil
}

// drain refuses new requests and answers every queued one errShuttingDown
// at once; running generations go on.
func (s *slots) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return
	}
	s.draining = true
	close(s.drained)
	for _, ch := range s.waiters {
		close(ch)
	}
	s.waiters = nil
}

// acquire returns a slot for an admitted request's prompt, preferring the
// idle slot whose cache shares the longest prefix with it. It waits for one
// in FIFO order, and fails with ctx's error when the client goes away and
// with errShuttingDown when the server drains. The slot must be given back
// with release.
func (s *slots) acquire(ctx context.Context, prompt []int) (*slot, error) {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return nil, errShuttingDown
	}
	if len(s.idle) > 0 {
		sl := s.takeIdleLocked(prompt)
		s.running++
		s.mu.Unlock()
		return s.ready(sl)
	}
	ch := make(chan *slot, 1)
	s.waiters = append(s.waiters, ch)
	s.mu.Unlock()

	select {
	case sl, ok := <-ch: // release counted us as running
		if !ok {
			return nil, errShuttingDown
		}
		return s.ready(sl)
	case <-ctx.Done():
	}
	s.mu.Lock()
	if i := slices.Index(s.waiters, ch); i >= 0 {
		s.waiters = slices.Delete(s.waiters, i, i+1)
		s.mu.Unlock()
		return nil, ctx.Err()
	}
	s.mu.Unlock()
	// A release handed us a slot just as ctx ended: pass it on (unless
	// drain closed ch instead).
	if sl, ok := <-ch; ok {
		s.release(sl)
	}
	return nil, ctx.Err()
}

// takeIdleLocked removes and returns the idle slot with the longest cached
// prefix of prompt; on a tie, one whose session already exists.
func (s *slots) takeIdleLocked(prompt []int) *slot {
	best, bestLen := 0, -1
	for i, sl := range s.idle {
		n := commonPrefix(sl.cached, prompt)
		if n > bestLen || (n == bestLen && sl.sess != nil && s.idle[best].sess == nil) {
			best, bestLen = i, n
		}
	}
	sl := s.idle[best]
	s.idle = slices.Delete(s.idle, best, best+1)
	return sl
}

// ready makes sl's session on first use.
func (s *slots) ready(sl *slot) (*slot, error) {
	if sl.sess != nil {
		return sl, nil
	}
	sess, err := s.newSess()
	if err != nil {
		s.release(sl)
		return nil, fmt.Errorf("server: new session: %w", err)
	}
	sl.sess = sess
	return sl, nil
}

// release gives sl back: to the longest waiting request, or to the idle set.
func (s *slots) release(sl *slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiters) > 0 {
		ch := s.waiters[0]
		s.waiters = slices.Delete(s.waiters, 0, 1)
		ch <- sl
		return
	}
	s.running--
	s.idle = append(s.idle, sl)
}

// busy returns the number of running and waiting generations.
func (s *slots) busy() (running, waiting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running, len(s.waiters)
}

func commonPrefix(a, b []int) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
