package runtime

import (
	"runtime"
	"sync"
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
}

type poolTask struct {
	job            rangeJob
	worker, lo, hi int
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
				t.job.run(t.worker, t.lo, t.hi)
				p.wg.Done()
			}
		}()
	}
	return p
}

// parallel runs job over [0, n) in contiguous shares rounded to multiples of
// grain (so that, e.g., rows of a quantized matrix stay cache-line friendly).
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
	per := (chunks + workers - 1) / workers
	p.wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		lo := min(n, w*per*grain)
		hi := min(n, (w+1)*per*grain)
		p.tasks[w-1] <- poolTask{job, w, lo, hi}
	}
	job.run(0, 0, min(n, per*grain))
	p.wg.Wait()
}

// close stops the workers.
func (p *workerPool) close() {
	for _, ch := range p.tasks {
		close(ch)
	}
	p.tasks = nil
}
