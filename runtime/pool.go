package runtime

import (
	"runtime"
	"sync"
	"sync/atomic"
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
type workerPool struct {
	threads int
	tasks   []chan poolTask
	wg      sync.WaitGroup
	mu      sync.Mutex // one job at a time: sessions of a server share the pool
	next    atomic.Int64
}

// poolTask tells a worker to take pieces of [0, n), piece rows at a time,
// until none are left.
type poolTask struct {
	job              rangeJob
	worker, n, piece int
}

func newWorkerPool(threads int) *workerPool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &workerPool{threads: threads}
	for i := 1; i < threads; i++ {
		ch := make(chan poolTask)
		p.tasks = append(p.tasks, ch)
		go func() {
			for t := range ch {
				p.drain(t)
				p.wg.Done()
			}
		}()
	}
	return p
}

// parallel runs job over [0, n) in pieces that are multiples of grain (so
// that, e.g., rows of a quantized matrix stay cache-line and tile friendly).
// Threads take pieces in order from a shared counter, about four each,
// instead of one fixed share: on a shared machine one thread is often slowed
// down for a while, and fixed halves would make the other wait for it.
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
	pieces := min(chunks, 4*workers)
	piece := (chunks + pieces - 1) / pieces * grain
	p.next.Store(0)
	p.wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		p.tasks[w-1] <- poolTask{job, w, n, piece}
	}
	p.drain(poolTask{job, 0, n, piece})
	p.wg.Wait()
}

// drain runs pieces of t's range until the shared counter passes its end.
func (p *workerPool) drain(t poolTask) {
	for {
		lo := int(p.next.Add(int64(t.piece))) - t.piece
		if lo >= t.n {
			return
		}
		t.job.run(t.worker, lo, min(t.n, lo+t.piece))
	}
}

// close stops the workers.
func (p *workerPool) close() {
	for _, ch := range p.tasks {
		close(ch)
	}
	p.tasks = nil
}
