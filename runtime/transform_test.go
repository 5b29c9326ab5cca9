package runtime

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/cafeq/cafeq/kernels"
	"github.com/cafeq/cafeq/model"
	"github.com/cafeq/cafeq/model/tokenizer"
)

func f32Bytes(x []float32) []byte {
	out := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

// randomBlockTransform returns a well-conditioned random block-diagonal M
// (identity plus noise, blocks of b) and its inverse, both (n/b, b, b)
// flattened, computed in float64 by Gauss-Jordan elimination.
func randomBlockTransform(rng *rand.Rand, n, b int) (m, inv []float64) {
	m, inv = make([]float64, n*b), make([]float64, n*b)
	for k := 0; k < n/b; k++ {
		a := make([]float64, b*2*b) // [M | I]
		for i := 0; i < b; i++ {
			for j := 0; j < b; j++ {
				v := rng.NormFloat64() * 0.3 / math.Sqrt(float64(b))
				if i == j {
					v += 1
				}
				a[i*2*b+j] = v
				m[k*b*b+i*b+j] = v
			}
			a[i*2*b+b+i] = 1
		}
		for c := 0; c < b; c++ {
			p := c
			for r := c + 1; r < b; r++ {
				if math.Abs(a[r*2*b+c]) > math.Abs(a[p*2*b+c]) {
					p = r
				}
			}
			for j := 0; j < 2*b; j++ {
				a[c*2*b+j], a[p*2*b+j] = a[p*2*b+j], a[c*2*b+j]
			}
			piv := a[c*2*b+c]
			for j := 0; j < 2*b; j++ {
				a[c*2*b+j] /= piv
			}
			for r := 0; r < b; r++ {
				if r != c {
					f := a[r*2*b+c]
					for j := 0; j < 2*b; j++ {
						a[r*2*b+j] -= f * a[c*2*b+j]
					}
				}
			}
		}
		for i := 0; i < b; i++ {
			for j := 0; j < b; j++ {
				inv[k*b*b+i*b+j] = a[i*2*b+b+j]
			}
		}
	}
	return m, inv
}

// TestTransformFoldedBackIsExact stores the golden model's q/k/v, gate/up
// and down as W·M with random block-diagonal M (f32, unquantized) and M⁻¹ in
// a .cq file: the runtime, applying M⁻¹ to the activations, must give the
// logits of the original model.
func TestTransformFoldedBackIsExact(t *testing.T) {
	const dir = "../testdata/gemma2-tiny"
	g := loadGolden(t, dir)
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ck.Config
	rng := rand.New(rand.NewPCG(3, 4))
	const block = 64
	type tr struct {
		name   string
		m, inv []float64
	}
	transforms := map[string]*tr{}
	transformFor := map[string]string{}
	var specs []model.CQTensorSpec
	for _, name := range ck.Names() {
		tn, _ := ck.Tensor(name)
		spec := model.CQTensorSpec{Name: name, Format: kernels.FormatF32, Shape: tn.Shape}
		if l, kind, ok := model.SplitLayerName(name); ok {
			group := map[string]string{model.AttnQ: "attn", model.AttnK: "attn", model.AttnV: "attn", model.FFNGate: "ffn", model.FFNUp: "ffn", model.FFNDown: "down"}[kind]
			if group != "" {
				trName := model.LayerName(l, group+"_in.inv")
				if transforms[trName] == nil {
					m, inv := randomBlockTransform(rng, tn.Shape[1], block)
					transforms[trName] = &tr{trName, m, inv}
				}
				transformFor[name] = trName
				spec.Transform = &model.CQTransform{Tensor: trName, Block: block}
			}
		}
		specs = append(specs, spec)
	}
	for name, tr := range transforms {
		specs = append(specs, model.CQTensorSpec{Name: name, Format: kernels.FormatF32, Shape: []int{len(tr.inv) / block, block}})
	}
	cfgJSON, _ := cfg.HFJSON()
	kind, data := tok.Source()
	path := filepath.Join(t.TempDir(), "folded.cq")
	w, err := model.CreateCQ(path, model.CQHeader{Config: cfgJSON, Quant: model.CQQuant{Method: "test"},
		Tokenizer: model.CQTokenizer{Kind: map[string]string{tokenizer.KindSentencePiece: model.TokenizerSentencePiece, tokenizer.KindHuggingFace: model.TokenizerHFJSON}[kind], Data: data}}, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ck.Names() {
		tn, _ := ck.Tensor(name)
		vals, _ := tn.Float32s()
		if trName, ok := transformFor[name]; ok {
			// W·M: column block k of W times M_k.
			m := transforms[trName].m
			rows, cols := tn.Shape[0], tn.Shape[1]
			out := make([]float32, len(vals))
			for r := 0; r < rows; r++ {
				for k := 0; k < cols/block; k++ {
					for j := 0; j < block; j++ {
						var s float64
						for i := 0; i < block; i++ {
							s += float64(vals[r*cols+k*block+i]) * m[k*block*block+i*block+j]
						}
						out[r*cols+k*block+j] = float32(s)
					}
				}
			}
			vals = out
		}
		if err := w.WriteTensor(name, f32Bytes(vals)); err != nil {
			t.Fatal(err)
		}
	}
	for name, tr := range transforms {
		inv := make([]float32, len(tr.inv))
		for i, v := range tr.inv {
			inv[i] = float32(v)
		}
		if err := w.WriteTensor(name, f32Bytes(inv)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	e, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !e.HasTransforms() {
		t.Fatal("the folded model has no transforms")
	}
	s, _ := e.NewSession(len(g.ids))
	got := allLogits(t, s, g.ids, g.vocab)
	if d := maxRelDiff(got, g.logits); d > 1e-4 {
		t.Fatalf("with M⁻¹ applied at run time: max |diff| = %.3g of the logit scale", d)
	} else {
		t.Logf("with M⁻¹ applied at run time: max |diff| = %.3g of the logit scale", d)
	}
}

// A transform stored in a superblock format, whose Tiled8 form is larger
// than its RowMajor bytes, applies block k with block k's own tiles: the
// same products as each block's RowMajor rows.
func TestBlockTransformSuperblockFormat(t *testing.T) {
	const n, b = 512, 256
	f, err := kernels.ParseFormat("q4_k_asym")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	gauss := func(k int) []float32 {
		v := make([]float32, k)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	rb := f.RowBytes(b)
	m := kernels.Matrix{Format: f, Rows: n, Cols: b, Data: make([]byte, n*rb)}
	for r := 0; r < n; r++ {
		if err := kernels.QuantizeRowRTN(f, m.Data[r*rb:(r+1)*rb], gauss(b)); err != nil {
			t.Fatal(err)
		}
	}
	bt, err := newBlockTransform("t", m)
	if err != nil {
		t.Fatal(err)
	}
	x := kernels.NewActivation(n)
	if err := x.Set(gauss(n)); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, n)
	var blk kernels.Matrix
	var part kernels.Activation
	bt.apply(got, x, 0, n, &blk, &part)
	for k := 0; k < n/b; k++ {
		mk := kernels.Matrix{Format: f, Rows: b, Cols: b, Data: m.Data[k*b*rb : (k+1)*b*rb]}
		xk := kernels.NewActivation(b)
		if err := xk.Set(x.F32[k*b : (k+1)*b]); err != nil {
			t.Fatal(err)
		}
		want := make([]float32, b)
		if err := mk.MulVec(want, xk, 0, b); err != nil {
			t.Fatal(err)
		}
		for r, w := range want {
			if d := math.Abs(float64(got[k*b+r] - w)); d > 1e-4*(1+math.Abs(float64(w))) {
				t.Fatalf("block %d row %d: %v, row-major %v (layout %s)", k, r, got[k*b+r], w, bt.inv.Layout)
			}
		}
	}
}
