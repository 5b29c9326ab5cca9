package runtime

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// rangeJob is work split over [0, n): run is called on disjoint sub-ranges
// from several goroutines at once; worker (0 <= worker < threads) indexes
// per-thread scratch. Jobs are pointers to preallocated structs,
// so dispatching one allocates nothing in the token loop.
type rangeJob interface {
	run(worker, lo, hi int)
}

// workerPool runs range jobs on a fixed set of goroutines. The calling
// goroutine takes the first share itself, so a pool of N threads keeps N-1
// workers.
//
// A decode step runs about 130 jobs of a few hundred microseconds each, with
// a few microseconds of single-threaded work between them. Handing jobs over
// channels parked the workers' OS threads in between, and waking one again
// took tens of microseconds under a hypervisor: on a 2-core AMD Zen 5 the two
// threads of a decode were busy 1.5 CPUs of 2. So workers and the caller
// spin for a short while (spinWait) watching an atomic job counter and only
// then sleep on a channel; a sleeping one is woken as before. An earlier try
// on a loaded Intel Xeon, polling 100 us, gave nothing there and cost a
// shared machine its CPU share (docs/PERFORMANCE.md, "The worker pool").
type workerPool struct {
	threads int
	mu      sync.Mutex // one job at a time: sessions of a server share the pool
	workers []*poolWorker

	// task is the current job. The caller writes it before bumping gen and
	// only after every worker finished the previous one (pending == 0), so
	// workers read it without a lock.
	task   poolTask
	next   atomic.Int64  // the next unclaimed index of task's range
	gen    atomic.Uint64 // bumped once per job handed to the workers, and by close
	closed atomic.Bool

	// pending counts the workers that have not finished the current job;
	// callerAsleep is set in it when the caller sleeps on callerWake. One
	// word, so that the worker whose decrement leaves exactly callerAsleep
	// knows that it must wake the caller, and no other ever does.
	pending    atomic.Int64
	callerWake chan struct{} // capacity 1
}

const callerAsleep = 1 << 32

// poolWorker is one worker goroutine's sleeping flag and wake-up channel.
type poolWorker struct {
	asleep atomic.Bool
	wake   chan struct{} // capacity 1
}

// spinWait is how long a worker waits for the next job, and the caller for
// the workers, before sleeping: about the single-threaded work between the
// jobs of a decode step (7-8 us at the median). Measured on the 2-core Zen 5
// (2B q4 decode, interleaved rounds): 10 us gave the same gain as 50 us on a
// quiet machine (decode 14.6-17.2 -> 18.4-19.8 tok/s) and cost 1-3% with a
// CPU hog on one of the two cores, where 50 us cost 5%; the channel-only
// pool it replaces was the baseline.
const spinWait = 10 * time.Microsecond

// poolTask tells a worker to take pieces of [0, n) until none are left:
// each a multiple of grain, and a share of what is left that shrinks as the
// range runs out (see drain).
type poolTask struct {
	job               rangeJob
	n, grain, divisor int
}

func newWorkerPool(threads int) *workerPool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &workerPool{threads: threads, callerWake: make(chan struct{}, 1)}
	for i := 1; i < threads; i++ {
		w := &poolWorker{wake: make(chan struct{}, 1)}
		p.workers = append(p.workers, w)
		go p.work(i, w)
	}
	return p
}

// work is worker i's loop: wait for a job, take pieces of it, report done.
func (p *workerPool) work(i int, w *poolWorker) {
	var seen uint64
	for {
		seen = p.await(w, seen)
		if p.closed.Load() {
			return
		}
		p.drain(i, p.task)
		if p.pending.Add(-1) == callerAsleep {
			p.callerWake <- struct{}{}
		}
	}
}

// await returns the job counter once it differs from seen: spinning for
// spinWait, then asleep until the caller wakes w. A worker going to sleep
// sets its flag and then checks the counter again; the caller bumps the
// counter and then takes the flag (both sequentially consistent), so either
// the worker sees the new job or the caller sees it asleep and wakes it. A
// wake-up can come late, from a job the worker had already seen while
// spinning; it then sleeps again.
func (p *workerPool) await(w *poolWorker, seen uint64) uint64 {
	for {
		if spinUntil(func() bool { return p.gen.Load() != seen }) {
			return p.gen.Load()
		}
		w.asleep.Store(true)
		if p.gen.Load() != seen {
			if !w.asleep.Swap(false) {
				<-w.wake // the caller took the flag: its wake-up is on the way
			}
			return p.gen.Load()
		}
		<-w.wake
	}
}

// spinUntil polls done for up to spinWait, yielding the processor now and
// then so that spinning never keeps another goroutine from running.
func spinUntil(done func() bool) bool {
	var start time.Time
	for i := 0; ; i++ {
		if done() {
			return true
		}
		if i&63 == 63 {
			if start.IsZero() {
				start = time.Now()
			} else if time.Since(start) > spinWait {
				return false
			}
			runtime.Gosched()
		}
	}
}

// parallel runs job over [0, n) in pieces that are multiples of grain (so
// that, e.g., rows of a quantized matrix stay cache-line and tile friendly).
// Threads take pieces in order from a shared counter instead of one fixed
// share: on a shared machine one thread is often slowed down for a while,
// and fixed halves would make the other wait for it. Pieces shrink towards
// the end of the range (guided scheduling), so the last one that a thread
// takes is short: the logits' product alone takes milliseconds, and equal
// quarters of it left one thread idle for up to a quarter.
func (p *workerPool) parallel(job rangeJob, n, grain int) {
	if grain < 1 {
		grain = 1
	}
	chunks := (n + grain - 1) / grain
	workers := min(p.threads, chunks)
	if workers <= 1 {
		job.run(0, 0, n)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.task = poolTask{job: job, n: n, grain: grain, divisor: 2 * workers}
	p.next.Store(0)
	// Every worker takes part in every job's hand-shake, also one left with
	// no piece, so that none can still be reading task when the next job
	// overwrites it.
	p.pending.Store(int64(len(p.workers)))
	p.wakeWorkers()
	p.drain(0, p.task)
	p.waitWorkers()
}

// wakeWorkers publishes the job written to task.
func (p *workerPool) wakeWorkers() {
	p.gen.Add(1)
	for _, w := range p.workers {
		if w.asleep.Swap(false) {
			w.wake <- struct{}{}
		}
	}
}

// waitWorkers returns when every worker has finished the current job:
// spinning for spinWait, then asleep until the last worker wakes it.
func (p *workerPool) waitWorkers() {
	if spinUntil(func() bool { return p.pending.Load() == 0 }) {
		return
	}
	for {
		v := p.pending.Load()
		if v == 0 {
			return
		}
		if p.pending.CompareAndSwap(v, v|callerAsleep) {
			<-p.callerWake
			return
		}
	}
}

// drain runs pieces of t's range until the shared counter passes its end.
// A piece is what is left divided by twice the number of threads, rounded up
// to whole grains.
func (p *workerPool) drain(worker int, t poolTask) {
	for {
		lo := int(p.next.Load())
		if lo >= t.n {
			return
		}
		grains := ((t.n-lo)/t.divisor + t.grain - 1) / t.grain
		hi := min(t.n, lo+max(1, grains)*t.grain)
		if p.next.CompareAndSwap(int64(lo), int64(hi)) {
			t.job.run(worker, lo, hi)
		}
	}
}

// close stops the workers.
func (p *workerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Swap(true) {
		return
	}
	p.wakeWorkers()
}
