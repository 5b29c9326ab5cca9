package runtime

import (
	"fmt"
	"unsafe"

	"github.com/cafeq/cafeq/kernels"
	"github.com/cafeq/cafeq/model"
)

// cqSource reads weights from a memory-mapped .cq file: packed matrices are
// used in place, and transforms shared by several matrices are loaded once.
type cqSource struct {
	f          *model.CQFile
	transforms map[string]*blockTransform
}

func (s *cqSource) matrix(name string, rows, cols int) (*linear, error) {
	t, err := s.f.Tensor(name)
	if err != nil {
		return nil, err
	}
	if len(t.Shape) != 2 || t.Shape[0] != rows || t.Shape[1] != cols {
		return nil, fmt.Errorf("runtime: tensor %q has shape %v, want [%d %d]", name, t.Shape, rows, cols)
	}
	l := &linear{Matrix: kernels.Matrix{Format: t.Format, Rows: rows, Cols: cols, Data: t.Data}}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("runtime: tensor %q: %w", name, err)
	}
	// The tier's fastest kernels may want another in-memory form (8-row
	// tiles on AVX2, Q6 widened to Q8 on NEON): convert once, and let the
	// mapped original leave memory.
	p, err := kernels.Prepare(&l.Matrix)
	if err != nil {
		return nil, fmt.Errorf("runtime: tensor %q: %w", name, err)
	}
	if p != &l.Matrix {
		l.Matrix = *p
		s.f.Release(t)
	}
	if t.Transform != nil {
		if l.transform, err = s.transform(t.Transform, cols); err != nil {
			return nil, fmt.Errorf("runtime: tensor %q: %w", name, err)
		}
	}
	return l, nil
}

func (s *cqSource) transform(ref *model.CQTransform, cols int) (*blockTransform, error) {
	if bt, ok := s.transforms[ref.Tensor]; ok {
		if bt.block != ref.Block || bt.inv.Rows != cols {
			return nil, fmt.Errorf("transform %q is shared by matrices of different widths", ref.Tensor)
		}
		return bt, nil
	}
	t, err := s.f.Tensor(ref.Tensor)
	if err != nil {
		return nil, err
	}
	if len(t.Shape) != 2 || t.Shape[0] != cols || t.Shape[1] != ref.Block {
		return nil, fmt.Errorf("transform %q has shape %v, want [%d %d]", ref.Tensor, t.Shape, cols, ref.Block)
	}
	bt, err := newBlockTransform(ref.Tensor, kernels.Matrix{Format: t.Format, Rows: cols, Cols: ref.Block, Data: t.Data})
	if err != nil {
		return nil, err
	}
	s.transforms[ref.Tensor] = bt
	return bt, nil
}

func (s *cqSource) vector(name string, n int) ([]float32, error) {
	t, err := s.f.Tensor(name)
	if err != nil {
		return nil, err
	}
	if t.Format.Type != kernels.F32 || len(t.Data) != 4*n {
		return nil, fmt.Errorf("runtime: tensor %q: want %d f32 values, have %s of %d bytes", name, n, t.Format, len(t.Data))
	}
	return float32s(t.Data), nil
}

// float32s views little-endian f32 bytes as []float32 without copying when
// the host is little-endian and the data aligned (the .cq file aligns every
// tensor to 64 bytes); otherwise it decodes a copy.
func float32s(b []byte) []float32 {
	n := len(b) / 4
	if n == 0 {
		return nil
	}
	if hostLittleEndian && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
	}
	out, _ := model.Tensor{DType: model.F32, Shape: []int{n}, Data: b[:4*n]}.Float32s() // F32 always decodes
	return out
}

var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// loadCQ opens a .cq file for inference.
func loadCQ(path string, opts Options) (*Engine, error) {
	f, err := model.OpenCQ(path)
	if err != nil {
		return nil, err
	}
	cfg, err := model.ParseConfig(f.Header.Config)
	if err != nil {
		f.Close()
		return nil, err
	}
	tok, err := model.TokenizerFromCQ(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	w, err := loadWeights(cfg, &cqSource{f: f, transforms: map[string]*blockTransform{}})
	if err != nil {
		f.Close()
		return nil, err
	}
	return newEngine(cfg, tok, w, f, opts)
}
