package runtime

import "testing"

type nopJob struct{}

func (nopJob) run(_, _, _ int) {}

// BenchmarkPoolDispatch is the cost of one parallel call with no work: the
// synchronization every matrix product of a decode step pays.
func BenchmarkPoolDispatch(b *testing.B) {
	p := newWorkerPool(2)
	defer p.close()
	j := &nopJob{}
	for i := 0; i < b.N; i++ {
		p.parallel(j, 64, 16)
	}
}
