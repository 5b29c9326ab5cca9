package runtime

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countJob counts how often each index is run and checks the worker index.
type countJob struct {
	t       *testing.T
	threads int
	hits    []atomic.Int32
	sleep   time.Duration // per run call
}

func (j *countJob) run(w, lo, hi int) {
	if w < 0 || w >= j.threads || lo < 0 || hi > len(j.hits) || lo >= hi {
		j.t.Errorf("run(%d, %d, %d) with %d threads, n %d", w, lo, hi, j.threads, len(j.hits))
		return
	}
	for i := lo; i < hi; i++ {
		j.hits[i].Add(1)
	}
	if j.sleep > 0 {
		time.Sleep(j.sleep)
	}
}

// check reports whether every index ran once since the last check (Errorf,
// not Fatalf: it runs outside the test's goroutine).
func (j *countJob) check(call int) bool {
	for i := range j.hits {
		if n := j.hits[i].Swap(0); n != 1 {
			j.t.Errorf("call %d: index %d of %d ran %d times", call, i, len(j.hits), n)
			return false
		}
	}
	return true
}

// pause is long enough for idle workers to block (their threads sleep)
// between jobs, so both a running and a sleeping pool are exercised.
const pause = 2 * time.Millisecond

// Every index of every job runs exactly once, whatever the thread count
// (also above GOMAXPROCS), the job's size (also fewer pieces than threads,
// so some workers sit a job out) and the pauses between jobs.
func TestWorkerPoolRunsEveryIndexOnce(t *testing.T) {
	withDeadline(t, func() { poolRunsEveryIndexOnce(t) })
}

func poolRunsEveryIndexOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 2 * runtime.GOMAXPROCS(0)} {
		for _, pause := range []time.Duration{0, pause} {
			t.Run(fmt.Sprintf("threads=%d/pause=%v", threads, pause), func(t *testing.T) {
				p := newWorkerPool(threads)
				defer p.close()
				call := 0
				for _, n := range []int{1, 5, 16, 17, 100, 4096} {
					for _, grain := range []int{0, 1, 3, 16} {
						j := &countJob{t: t, threads: threads, hits: make([]atomic.Int32, n)}
						for rep := 0; rep < 20; rep++ {
							p.parallel(j, n, grain)
							if !j.check(call) {
								return
							}
							call++
							if pause > 0 && rep%5 == 0 {
								time.Sleep(pause)
							}
						}
					}
				}
			})
		}
	}
}

// Several goroutines share one pool (the sessions of a server): their jobs
// run one at a time and each completely.
func TestWorkerPoolConcurrentCallers(t *testing.T) {
	withDeadline(t, func() { poolConcurrentCallers(t) })
}

func poolConcurrentCallers(t *testing.T) {
	p := newWorkerPool(3)
	defer p.close()
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := &countJob{t: t, threads: 3, hits: make([]atomic.Int32, 257)}
			for rep := 0; rep < 200; rep++ {
				if rep%50 == 0 {
					j.sleep = pause / 4
				} else {
					j.sleep = 0
				}
				p.parallel(j, len(j.hits), 8)
				if !j.check(rep) {
					return
				}
			}
		}()
	}
	wg.Wait()
}

// close ends the workers, whether they just finished a job or sleep.
func TestWorkerPoolCloseEndsWorkers(t *testing.T) {
	before := runtime.NumGoroutine()
	for _, idle := range []time.Duration{0, pause} {
		p := newWorkerPool(4)
		p.parallel(&countJob{t: t, threads: 4, hits: make([]atomic.Int32, 64)}, 64, 1)
		time.Sleep(idle)
		p.close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left after close, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
}

// A job costs no allocation (the pool runs about 130 per decoded token).
func TestWorkerPoolNoAllocs(t *testing.T) {
	p := newWorkerPool(2)
	defer p.close()
	j := &nopJob{}
	if n := testing.AllocsPerRun(100, func() { p.parallel(j, 64, 16) }); n != 0 {
		t.Fatalf("parallel allocates %v times", n)
	}
}

// withDeadline fails the test instead of hanging when fn, which runs on
// another goroutine and so must not call t.Fatal, does not return.
func withDeadline(t *testing.T, fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the pool hung")
	}
}
