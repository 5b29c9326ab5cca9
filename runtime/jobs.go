package runtime

import "github.com/cafeq/cafeq/kernels"

type matmulJob struct {
	parts [3]matmulPart
	n     int
	in    *kernels.ActivationBatch
	one   kernels.Activation // in's single token, when decoding
}

// run computes stacked rows [lo, hi): each part's share of them.
func (j *matmulJob) run(_, lo, hi int) {
	base := 0
	for _, p := range j.parts[:j.n] {
		m := &p.l.Matrix
		r0, r1 := max(lo-base, 0), min(hi-base, m.Rows)
		base += m.Rows
		if r0 >= r1 {
			continue
		}
		var err error
		if j.in.N == 1 {
			err = m.MulVec(p.dst, &j.one, r0, r1)
		} else {
			err = m.MulMat(p.dst, j.in, r0, r1)
		}
		if err != nil {
			panic(err) // shapes are fixed at load; an error here is a bug
		}
	}
}

type transformJob struct {
	t    *blockTransform
	src  *kernels.ActivationBatch
	dst  []float32
	tok  []kernels.Activation // per worker: the token being transformed
	blk  []kernels.Matrix     // per worker scratch for one block of M⁻¹
	part []kernels.Activation // per worker scratch for one block of x
}

// run transforms rows [lo, hi) of the flattened (tokens × width) batch.
func (j *transformJob) run(w, lo, hi int) {
	width := j.src.Cols
	for r := lo; r < hi; {
		tok := r / width
		end := min(hi, (tok+1)*width)
		j.tok[w] = j.src.Token(tok)
		j.t.apply(j.dst[tok*width:(tok+1)*width], &j.tok[w], r-tok*width, end-tok*width, &j.blk[w], &j.part[w])
		r = end
	}
}
