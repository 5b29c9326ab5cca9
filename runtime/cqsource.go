package runtime

import (
	"bytes"
	"fmt"
	"unsafe"

	"github.com/cafeq/cafeq/kernels"
	"github.com/cafeq/cafeq/model"
)

// cqSource reads weights from a memory-mapped .cq file; transforms shared by
// several matrices are loaded once.
//
// By default (private) every tensor is copied out of the mapping and its
// CRC-32C checked on the copy, so that a corrupt file fails to load and
// nothing computed after loading reads the file: it may then be truncated or
// overwritten without effect. Where the tier re-lays a matrix out (tiles on
// AVX2) the copy goes through one reused scratch buffer, so the check costs a
// memcpy and a CRC pass. With Options.NoVerify the mapped bytes are used in
// place, unchecked, and the file must stay unchanged while the engine runs.
type cqSource struct {
	f          *model.CQFile
	transforms map[string]*blockTransform
	private    bool   // copy and verify (the default), or use the mapping in place
	scratch    []byte // private mode: the copy of a matrix that Prepare re-lays out
}

// read returns t's bytes: a verified private copy, in scratch when reuse is
// set (the caller copies it again if it keeps it), or the mapped bytes.
func (s *cqSource) read(t model.CQTensor, reuse bool) ([]byte, error) {
	if !s.private {
		return t.Data, nil
	}
	var buf []byte
	if reuse {
		if int64(cap(s.scratch)) < t.Size {
			s.scratch = make([]byte, t.Size)
		}
		buf = s.scratch[:t.Size]
	} else {
		buf = make([]byte, t.Size)
	}
	if err := s.f.ReadTensor(t, buf, true); err != nil {
		return nil, err
	}
	s.f.Release(t) // the mapped pages are not read again
	return buf, nil
}

func (s *cqSource) matrix(name string, rows, cols int) (*linear, error) {
	t, err := s.f.Tensor(name)
	if err != nil {
		return nil, err
	}
	if len(t.Shape) != 2 || t.Shape[0] != rows || t.Shape[1] != cols {
		return nil, fmt.Errorf("runtime: tensor %q has shape %v, want [%d %d]", name, t.Shape, rows, cols)
	}
	data, err := s.read(t, true)
	if err != nil {
		return nil, err
	}
	l := &linear{Matrix: kernels.Matrix{Format: t.Format, Rows: rows, Cols: cols, Data: data}}
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
	switch {
	case p != &l.Matrix:
		l.Matrix = *p
		s.f.Release(t)
	case s.private:
		l.Matrix.Data = bytes.Clone(data) // kept as is: out of the reused scratch
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
	data, err := s.read(t, false)
	if err != nil {
		return nil, err
	}
	bt, err := newBlockTransform(ref.Tensor, kernels.Matrix{Format: t.Format, Rows: cols, Cols: ref.Block, Data: data})
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
	data, err := s.read(t, false)
	if err != nil {
		return nil, err
	}
	return float32s(data), nil
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
	src := &cqSource{f: f, transforms: map[string]*blockTransform{}, private: !opts.NoVerify}
	w, err := loadWeights(cfg, src)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	if src.private {
		// Everything the engine reads is private memory now.
		f.Close()
		return newEngine(cfg, tok, w, nil, opts)
	}
	return newEngine(cfg, tok, w, f, opts)
}
