package quantize

import (
	"errors"

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
