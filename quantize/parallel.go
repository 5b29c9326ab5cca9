package quantize

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallelFor runs f(0..n-1) on GOMAXPROCS goroutines, handing out indices
// one at a time so uneven items still keep every core busy.
func parallelFor(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}
