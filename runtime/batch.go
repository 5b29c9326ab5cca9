package runtime

import (
	"sync/atomic"
	"time"
)

// Decode steps of concurrent sessions are batched: every Session.Step goes
// to one stepper goroutine, which runs all steps waiting at that moment as
// the rows of one forward pass. Decoding is bound by reading the weights, so
// N sessions stepping together cost little more than one.

// maxStepBatch bounds the rows of one batched decode step.
const maxStepBatch = 16

// stepWait is how long the stepper waits for the other sessions that are
// generating to join a step before running the ones it has.
const stepWait = 2 * time.Millisecond

// stepRequest is a session's pending decode step; each session owns one and
// reuses it, so stepping allocates nothing.
type stepRequest struct {
	s    *Session
	id   int
	err  error // the step's outcome, set before done
	done chan struct{}
}

type stepper struct {
	requests chan *stepRequest
	quit     chan struct{}
	decoding atomic.Int32 // sessions inside Generate's token loop
	maxCtx   atomic.Int64 // largest session context, for the batch scratch
	sc       *scratch
	batch    []*stepRequest
}

// batchStep hands s's step to the stepper and waits for its logits.
func (e *Engine) batchStep(s *Session, id int) ([]float32, error) {
	st := &e.stepper
	s.step.s, s.step.id = s, id
	st.requests <- &s.step
	<-s.step.done
	if s.step.err != nil {
		return nil, s.step.err
	}
	return s.logit, nil
}

// runStepper collects waiting steps into batches and runs them.
func (e *Engine) runStepper() {
	st := &e.stepper
	st.batch = make([]*stepRequest, 0, maxStepBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var first *stepRequest
		select {
		case first = <-st.requests:
		case <-st.quit:
			return
		}
		st.batch = append(st.batch[:0], first)
		// Take whatever else is waiting; if fewer sessions than are
		// generating have arrived, give the rest a moment to join.
		want := min(int(st.decoding.Load()), maxStepBatch)
		timer.Reset(stepWait)
	collect:
		for len(st.batch) < maxStepBatch {
			select {
			case r := <-st.requests:
				st.batch = append(st.batch, r)
				continue
			default:
			}
			if len(st.batch) >= want {
				break
			}
			select {
			case r := <-st.requests:
				st.batch = append(st.batch, r)
			case <-timer.C:
				break collect
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		e.runStepBatch(st.batch)
		for i, r := range st.batch {
			st.batch[i] = nil
			r.done <- struct{}{}
		}
	}
}

// runStepBatch runs one decode step for every request as rows of one pass.
func (e *Engine) runStepBatch(batch []*stepRequest) {
	st := &e.stepper
	if need := int(st.maxCtx.Load()); st.sc == nil || st.sc.maxCtx < need {
		st.sc = e.newScratch(maxStepBatch, need, maxStepBatch) // grows only when a longer session appears
	}
	sc := st.sc
	for i, r := range batch {
		sc.ids[i] = r.id
		sc.refs[i] = rowRef{&r.s.cache, r.s.cache.pos}
	}
	n := len(batch)
	e.forwardRows(sc, n)
	bad, err := e.logits(sc, 0, n)
	vocab := e.Config.VocabSize
	for i, r := range batch {
		r.err = nil
		if bad != nil && bad[i] {
			r.err = err
		}
		copy(r.s.logit, sc.logit[i*vocab:(i+1)*vocab])
		sc.refs[i] = rowRef{} // hold no session's cache past its step
	}
}

// startStepper starts the stepper goroutine; Close stops it.
func (e *Engine) startStepper() {
	e.stepper.requests = make(chan *stepRequest, 64)
	e.stepper.quit = make(chan struct{})
	go e.runStepper()
}

func (e *Engine) stopStepper() { close(e.stepper.quit) }
