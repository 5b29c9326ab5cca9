package runtime

import (
	"fmt"

	"github.com/cafeq/cafeq/kernels"
	"github.com/cafeq/cafeq/model"
)

// linear is one weight matrix y = W·x, optionally preceded by a block-diagonal
// input transform: the file stores Q(W·M) and the runtime applies M⁻¹ to the
// activation first (see transform.go).
type linear struct {
	kernels.Matrix
	transform *blockTransform // nil: none
}

// layer holds one transformer block's weights in forward order.
type layer struct {
	attnNorm     []float32 // (d_model)
	q, k, v, o   *linear
	postAttnNorm []float32 // (d_model)
	ffnNorm      []float32 // (d_model)
	gate, up     *linear
	down         *linear
	postFFNNorm  []float32 // (d_model)
}

// weights is the whole model. embed is also the output projection when the
// embeddings are tied (always, in released Gemma 2 checkpoints).
type weights struct {
	embed     *linear // (vocab, d_model)
	output    *linear // (vocab, d_model); == embed when tied
	finalNorm []float32
	layers    []layer
}

// tensorSource is what the loader needs from a checkpoint or a .cq file.
type tensorSource interface {
	matrix(name string, rows, cols int) (*linear, error)
	vector(name string, n int) ([]float32, error)
}

// matrix returns the field that holds the matrix of kind (a model.LayerTensors
// entry), vector that of a vector: the one place that maps the table to the
// forward pass's fields.
func (L *layer) matrix(kind string) **linear {
	switch kind {
	case model.AttnQ:
		return &L.q
	case model.AttnK:
		return &L.k
	case model.AttnV:
		return &L.v
	case model.AttnO:
		return &L.o
	case model.FFNGate:
		return &L.gate
	case model.FFNUp:
		return &L.up
	case model.FFNDown:
		return &L.down
	}
	panic("runtime: no field for matrix " + kind)
}

func (L *layer) vector(kind string) *[]float32 {
	switch kind {
	case model.AttnNorm:
		return &L.attnNorm
	case model.PostAttnNorm:
		return &L.postAttnNorm
	case model.FFNNorm:
		return &L.ffnNorm
	case model.PostFFNNorm:
		return &L.postFFNNorm
	}
	panic("runtime: no field for vector " + kind)
}

// matrices lists the layer's matrices in forward order.
func (L *layer) matrices() []*linear {
	out := make([]*linear, 0, len(model.LinearKinds))
	for _, kind := range model.LinearKinds {
		out = append(out, *L.matrix(kind))
	}
	return out
}

func loadWeights(cfg model.Config, src tensorSource) (*weights, error) {
	d := cfg.HiddenSize
	w := &weights{}
	var err error
	if w.embed, err = src.matrix(model.NameEmbed, cfg.VocabSize, d); err != nil {
		return nil, err
	}
	w.output = w.embed
	if !cfg.TieWordEmbeddings {
		if w.output, err = src.matrix(model.NameOutput, cfg.VocabSize, d); err != nil {
			return nil, err
		}
	}
	if w.finalNorm, err = src.vector(model.NameFinalNorm, d); err != nil {
		return nil, err
	}
	w.layers = make([]layer, cfg.NumHiddenLayers)
	for l := range w.layers {
		L := &w.layers[l]
		for _, t := range model.LayerTensors {
			name, shape := model.LayerName(l, t.Kind), t.Shape(cfg)
			if t.Linear() {
				*L.matrix(t.Kind), err = src.matrix(name, shape[0], shape[1])
			} else {
				*L.vector(t.Kind), err = src.vector(name, shape[0])
			}
			if err != nil {
				return nil, err
			}
		}
		// Matrices reading one activation share its transform, since the
		// runtime transforms that activation once (V may differ from Q and K:
		// CafeQ folds V's transform into the V/O pair instead).
		if !sameTransform(L.q, L.k) || !sameTransform(L.gate, L.up) {
			return nil, fmt.Errorf("runtime: layer %d: matrices that share an input have different transforms", l)
		}
	}
	return w, nil
}

// anyQuantized reports whether any matrix reads the 8-bit activation form, so
// that activations are only quantized when something uses them.
func (w *weights) anyQuantized() bool {
	if w.embed.Format.Type.Quantized() || w.output.Format.Type.Quantized() {
		return true
	}
	for i := range w.layers {
		for _, m := range w.layers[i].matrices() {
			if m.Format.Type.Quantized() {
				return true
			}
		}
	}
	return false
}

// checkpointSource reads an unquantized Hugging Face checkpoint: the
// F32/F16/BF16 bytes are the kernels' matrix data. By default (private) they
// are copied out of the mapping, so the files are not read after loading and
// may change without effect; with Options.NoVerify they are used in place.
type checkpointSource struct {
	ck      *model.Checkpoint
	private bool
}

func (s checkpointSource) matrix(name string, rows, cols int) (*linear, error) {
	t, err := s.ck.Tensor(name)
	if err != nil {
		return nil, err
	}
	var f kernels.Format
	switch t.DType {
	case model.F32:
		f = kernels.FormatF32
	case model.F16:
		f = kernels.FormatF16
	case model.BF16:
		f = kernels.FormatBF16
	default:
		return nil, fmt.Errorf("runtime: tensor %q: dtype %s", name, t.DType)
	}
	data := t.Data
	if s.private {
		data = make([]byte, len(t.Data))
		if err := model.ReadMapped(data, t.Data); err != nil {
			return nil, fmt.Errorf("runtime: tensor %q: %w", name, err)
		}
	}
	m := &linear{Matrix: kernels.Matrix{Format: f, Rows: rows, Cols: cols, Data: data}}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("runtime: tensor %q: %w", name, err)
	}
	return m, nil
}

func (s checkpointSource) vector(name string, n int) ([]float32, error) {
	t, err := s.ck.Tensor(name)
	if err != nil {
		return nil, err
	}
	if t.Elements() != n {
		return nil, fmt.Errorf("runtime: tensor %q has %d values, want %d", name, t.Elements(), n)
	}
	data := make([]byte, len(t.Data)) // decoded from a private copy, whatever private says: it is small
	if err := model.ReadMapped(data, t.Data); err != nil {
		return nil, fmt.Errorf("runtime: tensor %q: %w", name, err)
	}
	t.Data = data
	return t.Float32s()
}
