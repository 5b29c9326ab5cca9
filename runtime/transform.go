package runtime

import (
	"fmt"

	"github.com/cafeq/cafeq/kernels"
)

// blockTransform is a block-diagonal M⁻¹ applied to an activation before a
// transformed matrix: the file stores Q(W·M), and W·x = Q(W·M)·(M⁻¹·x).
// inv holds n/block row-major block×block matrices, block k acting on
// x[k*block : (k+1)*block].
type blockTransform struct {
	name  string // the file's tensor holding M⁻¹, to tell shared transforms apart
	block int
	inv   []float32 // (n/block, block, block)
}

func newBlockTransform(name string, n, block int, inv []float32) (*blockTransform, error) {
	if block <= 0 || n%block != 0 || len(inv) != n*block {
		return nil, fmt.Errorf("runtime: transform %q: %d values for width %d and block %d", name, len(inv), n, block)
	}
	return &blockTransform{name: name, block: block, inv: inv}, nil
}

// apply writes M⁻¹·x into dst for rows [lo, hi) of the full block-diagonal
// matrix (so the worker pool can split it); dst must not alias x.
func (t *blockTransform) apply(dst, x []float32, lo, hi int) {
	b := t.block
	for r := lo; r < hi; r++ {
		k := r / b
		dst[r] = kernels.Dot(t.inv[r*b:(r+1)*b], x[k*b:(k+1)*b])
	}
}

func sameTransform(a, b *linear) bool {
	if a.transform == nil || b.transform == nil {
		return a.transform == nil && b.transform == nil
	}
	return a.transform.name == b.transform.name
}
