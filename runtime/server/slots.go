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
// Requests that find no idle slot wait in FIFO order; a released slot goes
// straight to the longest waiting request.
type slots struct {
	mu      sync.Mutex
	idle    []*slot
	waiters []chan *slot // each buffered (1): a release never blocks
	running int
	limit   int // running + waiting at most: Parallel + QueueSize
	newSess func() (Session, error)
}

func newSlots(parallel, queue int, newSess func() (Session, error)) *slots {
	s := &slots{limit: parallel + queue, newSess: newSess}
	for range parallel {
		s.idle = append(s.idle, &slot{})
	}
	return s
}

var errQueueFull = &apiError{Status: http.StatusTooManyRequests, Type: typeRateLimit, Code: "queue_full",
	Message: "server is busy: all generation slots are in use and the queue is full; retry later"}

// acquire returns a slot for prompt, preferring the idle slot whose cache
// shares the longest prefix with it. It fails at once with errQueueFull when
// every slot is busy and the queue is full, and with ctx's error when the
// client goes away while waiting. The slot must be given back with release.
func (s *slots) acquire(ctx context.Context, prompt []int) (*slot, error) {
	s.mu.Lock()
	if len(s.idle) > 0 {
		sl := s.takeIdleLocked(prompt)
		s.running++
		s.mu.Unlock()
		return s.ready(sl)
	}
	if s.running+len(s.waiters) >= s.limit {
		s.mu.Unlock()
		return nil, errQueueFull
	}
	ch := make(chan *slot, 1)
	s.waiters = append(s.waiters, ch)
	s.mu.Unlock()

	select {
	case sl := <-ch: // release counted us as running
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
	// A release handed us a slot just as ctx ended: pass it on.
	s.release(<-ch)
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
