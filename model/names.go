package model

import (
	"slices"
	"strconv"
	"strings"
)

// Canonical tensor names. Everything inside cafeq (runtime, quantizer, the .cq
// file) uses these; Hugging Face names are mapped once, here.
const (
	NameEmbed     = "embed"      // (vocab, d_model); also the output projection when tied
	NameOutput    = "output"     // (vocab, d_model); only when embeddings are not tied
	NameFinalNorm = "final_norm" // (d_model)
)

// Per-layer tensor kinds; LayerName(l, kind) gives the full canonical name.
// LayerTensors says everything else about each.
const (
	AttnNorm     = "attn_norm"
	AttnQ        = "q"
	AttnK        = "k"
	AttnV        = "v"
	AttnO        = "o"
	PostAttnNorm = "post_attn_norm"
	FFNNorm      = "ffn_norm"
	FFNGate      = "gate"
	FFNUp        = "up"
	FFNDown      = "down"
	PostFFNNorm  = "post_ffn_norm"
)

// Input is an activation that a layer's matrices read. Matrices reading one
// input share its transform: the runtime applies M⁻¹ to that activation once,
// and the .cq file stores that M⁻¹ once, as TransformName.
type Input uint8

const (
	NoInput Input = iota // a vector (the norms)
	AttnIn               // the normed layer input: q, k, v
	AttnOut              // the attention heads' output: o
	FFNIn                // the normed FFN input: gate, up
	DownIn               // the GeGLU output: down
)

// Inputs lists the inputs in forward order.
var Inputs = []Input{AttnIn, AttnOut, FFNIn, DownIn}

var inputNames = [...]struct{ name, label string }{
	NoInput: {"", ""},
	AttnIn:  {"attn_in", "attention input"},
	AttnOut: {"attn_out", "attention output"},
	FFNIn:   {"ffn_in", "ffn input"},
	DownIn:  {"down_in", "ffn output"},
}

// String is the input's canonical name, e.g. "attn_in".
func (in Input) String() string { return inputNames[in].name }

// Label names the input in prose, e.g. "attention input".
func (in Input) Label() string { return inputNames[in].label }

// TransformName is the canonical name of the M⁻¹ tensor of input in in
// layer l, e.g. "layers.3.attn_in.inv".
func (in Input) TransformName(l int) string { return LayerName(l, in.String()+".inv") }

// Width is the input's length under c: the columns of the matrices reading it.
func (in Input) Width(c Config) int {
	for _, t := range LayerTensors {
		if t.Input == in && in != NoInput {
			return t.Shape(c)[1]
		}
	}
	return 0
}

// LayerTensor describes one per-layer tensor kind: the one table the loader,
// the quantizer, the file writer and the checkpoint reader all read.
type LayerTensor struct {
	Kind  string // canonical kind, as in LayerName(l, Kind)
	HF    string // the Hugging Face name inside a layer: model.layers.N.<HF>.weight
	Input Input  // the activation a matrix reads; NoInput for a vector
	shape func(c Config) []int
}

// Shape is the tensor's shape under c: (out, in) in PyTorch order for a
// matrix, (n) for a vector.
func (t LayerTensor) Shape(c Config) []int { return t.shape(c) }

// Linear reports whether the tensor is a matrix a quantizer packs.
func (t LayerTensor) Linear() bool { return t.Input != NoInput }

// LayerTensors lists every per-layer tensor in forward order.
var LayerTensors = []LayerTensor{
	{AttnNorm, "input_layernorm", NoInput, func(c Config) []int { return []int{c.HiddenSize} }},
	{AttnQ, "self_attn.q_proj", AttnIn, func(c Config) []int { return []int{c.QDim(), c.HiddenSize} }},
	{AttnK, "self_attn.k_proj", AttnIn, func(c Config) []int { return []int{c.KVDim(), c.HiddenSize} }},
	{AttnV, "self_attn.v_proj", AttnIn, func(c Config) []int { return []int{c.KVDim(), c.HiddenSize} }},
	{AttnO, "self_attn.o_proj", AttnOut, func(c Config) []int { return []int{c.HiddenSize, c.QDim()} }},
	{PostAttnNorm, "post_attention_layernorm", NoInput, func(c Config) []int { return []int{c.HiddenSize} }},
	{FFNNorm, "pre_feedforward_layernorm", NoInput, func(c Config) []int { return []int{c.HiddenSize} }},
	{FFNGate, "mlp.gate_proj", FFNIn, func(c Config) []int { return []int{c.IntermediateSize, c.HiddenSize} }},
	{FFNUp, "mlp.up_proj", FFNIn, func(c Config) []int { return []int{c.IntermediateSize, c.HiddenSize} }},
	{FFNDown, "mlp.down_proj", DownIn, func(c Config) []int { return []int{c.HiddenSize, c.IntermediateSize} }},
	{PostFFNNorm, "post_feedforward_layernorm", NoInput, func(c Config) []int { return []int{c.HiddenSize} }},
}

// LinearKinds are the per-layer matrices a quantizer packs, in forward order.
var LinearKinds = linearKinds()

func linearKinds() []string {
	var out []string
	for _, t := range LayerTensors {
		if t.Linear() {
			out = append(out, t.Kind)
		}
	}
	return out
}

// KindsReading lists the matrices that read input in, in forward order.
func KindsReading(in Input) []string {
	var out []string
	for _, t := range LayerTensors {
		if t.Input == in && in != NoInput {
			out = append(out, t.Kind)
		}
	}
	return out
}

// LayerName is the canonical name of tensor kind in layer l, e.g. "layers.3.gate".
func LayerName(l int, kind string) string { return "layers." + strconv.Itoa(l) + "." + kind }

// SplitLayerName is the inverse of LayerName; ok is false for non-layer names.
func SplitLayerName(name string) (layer int, kind string, ok bool) {
	rest, found := strings.CutPrefix(name, "layers.")
	if !found {
		return 0, "", false
	}
	num, kind, found := strings.Cut(rest, ".")
	if !found {
		return 0, "", false
	}
	l, err := strconv.Atoi(num)
	if err != nil || l < 0 {
		return 0, "", false
	}
	return l, kind, true
}

// CanonicalName maps a Hugging Face Gemma 2 tensor name to cafeq's scheme.
// ok is false for tensors cafeq does not use.
func CanonicalName(hf string) (string, bool) {
	name, found := strings.CutSuffix(hf, ".weight")
	if !found {
		return "", false
	}
	switch name {
	case "model.embed_tokens":
		return NameEmbed, true
	case "model.norm":
		return NameFinalNorm, true
	case "lm_head":
		return NameOutput, true
	}
	rest, found := strings.CutPrefix(name, "model.layers.")
	if !found {
		return "", false
	}
	num, sub, found := strings.Cut(rest, ".")
	if !found {
		return "", false
	}
	l, err := strconv.Atoi(num)
	if err != nil || l < 0 || strconv.Itoa(l) != num {
		return "", false
	}
	i := slices.IndexFunc(LayerTensors, func(t LayerTensor) bool { return t.HF == sub })
	if i < 0 {
		return "", false
	}
	return LayerName(l, LayerTensors[i].Kind), true
}

// HFName is the Hugging Face name of a canonical tensor name (the inverse of
// CanonicalName); a name it does not know comes back unchanged.
func HFName(name string) string {
	switch name {
	case NameEmbed:
		return "model.embed_tokens.weight"
	case NameFinalNorm:
		return "model.norm.weight"
	case NameOutput:
		return "lm_head.weight"
	}
	l, kind, ok := SplitLayerName(name)
	if !ok {
		return name
	}
	i := slices.IndexFunc(LayerTensors, func(t LayerTensor) bool { return t.Kind == kind })
	if i < 0 {
		return name
	}
	return "model.layers." + strconv.Itoa(l) + "." + LayerTensors[i].HF + ".weight"
}

// ExpectedShapes lists every tensor a checkpoint of this config must hold,
// with its shape in PyTorch (out, in) order.
func (c Config) ExpectedShapes() map[string][]int {
	m := map[string][]int{
		NameEmbed:     {c.VocabSize, c.HiddenSize},
		NameFinalNorm: {c.HiddenSize},
	}
	if !c.TieWordEmbeddings {
		m[NameOutput] = []int{c.VocabSize, c.HiddenSize}
	}
	for l := 0; l < c.NumHiddenLayers; l++ {
		for _, t := range LayerTensors {
			m[LayerName(l, t.Kind)] = t.Shape(c)
		}
	}
	return m
}
