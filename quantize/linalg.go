package quantize

import (
	"errors"

	"github.com/cafeq/cafeq/kernels"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/mat"
)

func dense64(rows, cols int, src []float32) *mat.Dense {
	d := make([]float64, rows*cols)
	for i, v := range src {
		d[i] = float64(v)
	}
	return mat.NewDense(rows, cols, d)
}

func toDense32(m *mat.Dense) []float32 {
	r, c := m.Dims()
	out := make([]float32, r*c)
	for i := range r {
		for j, v := range m.RawRowView(i) {
			out[i*c+j] = float32(v)
		}
	}
	return out
}

func to32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// invert returns M^-1, or errSingular when M is (numerically) singular.
func invert(m *mat.Dense) (*mat.Dense, error) {
	var n mat.Dense
	if err := n.Inverse(m); err != nil {
		var c mat.Condition
		if errors.As(err, &c) && float64(c) < 1e10 {
			return &n, nil
		}
		return nil, errSingular
	}
	return &n, nil
}

var errSingular = errors.New("quantize: transform block is singular")

// gemm32 computes C = A·B with A (rows x k, stride lda), B (k x n, dense),
// C (rows x n, stride ldc).
func gemm32(c []float32, ldc int, a []float32, lda, rows, k int, bm []float32, n int) {
	A := blas32.General{Rows: rows, Cols: k, Stride: lda, Data: a[:(rows-1)*lda+k]}
	B := blas32.General{Rows: k, Cols: n, Stride: n, Data: bm}
	C := blas32.General{Rows: rows, Cols: n, Stride: ldc, Data: c[:(rows-1)*ldc+n]}
	blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, A, B, 0, C)
}

func floats64Dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// traceProd is tr(P·Q) = sum_ij P_ij Q_ji.
func traceProd(p, q *mat.Dense) float64 {
	n, _ := p.Dims()
	var s float64
	for i := range n {
		for j := range n {
			s += p.At(i, j) * q.At(j, i)
		}
	}
	return s
}

func symOf(m *mat.Dense, n int) *mat.SymDense {
	s := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			s.SetSym(i, j, 0.5*(m.At(i, j)+m.At(j, i)))
		}
	}
	return s
}

func grow32(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

func grow64(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// mulNT computes C = A·Bᵀ for A (m x k), B (n x k) and C (m x n), all
// row-major and dense, with the runtime's SIMD dot kernels: several times
// gonum's pure-Go sgemm, which dominated the input covariances' cost. B
// is taken a chunk of rows at a time, sized to stay in a core's L2 while
// every row of A passes over it.
func mulNT(c, a []float32, m, k int, b []float32, n int) {
	chunk := max(4, (256<<10)/(4*max(k, 1)))
	parallelFor((n+chunk-1)/chunk, func(ch int) {
		j0 := ch * chunk
		j1 := min(j0+chunk, n)
		rows := b[j0*k : j1*k]
		for i := range m {
			kernels.DotRows(c[i*n+j0:i*n+j1], rows, a[i*k:(i+1)*k])
		}
	})
}

// transpose32 returns the n x m transpose of a (m x n).
func transpose32(a []float32, m, n int) []float32 {
	t := make([]float32, len(a))
	const blk = 64
	for i0 := 0; i0 < m; i0 += blk {
		for j0 := 0; j0 < n; j0 += blk {
			for i := i0; i < min(i0+blk, m); i++ {
				for j := j0; j < min(j0+blk, n); j++ {
					t[j*m+i] = a[i*n+j]
				}
			}
		}
	}
	return t
}
