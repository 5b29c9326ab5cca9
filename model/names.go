package model

import (
	"fmt"
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
const (
	AttnNorm     = "attn_norm"      // (d_model) before attention
	AttnQ        = "q"              // (heads*head_dim, d_model)
	AttnK        = "k"              // (kv_heads*head_dim, d_model)
	AttnV        = "v"              // (kv_heads*head_dim, d_model)
	AttnO        = "o"              // (d_model, heads*head_dim)
	PostAttnNorm = "post_attn_norm" // (d_model) on the attention output
	FFNNorm      = "ffn_norm"       // (d_model) before the FFN
	FFNGate      = "gate"           // (ffn, d_model)
	FFNUp        = "up"             // (ffn, d_model)
	FFNDown      = "down"           // (d_model, ffn)
	PostFFNNorm  = "post_ffn_norm"  // (d_model) on the FFN output
)

// LayerKinds lists the per-layer tensors in forward order.
var LayerKinds = []string{AttnNorm, AttnQ, AttnK, AttnV, AttnO, PostAttnNorm, FFNNorm, FFNGate, FFNUp, FFNDown, PostFFNNorm}

// LinearKinds are the per-layer matrices a quantizer packs.
var LinearKinds = []string{AttnQ, AttnK, AttnV, AttnO, FFNGate, FFNUp, FFNDown}

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

var hfLayerKinds = map[string]string{
	"input_layernorm":            AttnNorm,
	"self_attn.q_proj":           AttnQ,
	"self_attn.k_proj":           AttnK,
	"self_attn.v_proj":           AttnV,
	"self_attn.o_proj":           AttnO,
	"post_attention_layernorm":   PostAttnNorm,
	"pre_feedforward_layernorm":  FFNNorm,
	"mlp.gate_proj":              FFNGate,
	"mlp.up_proj":                FFNUp,
	"mlp.down_proj":              FFNDown,
	"post_feedforward_layernorm": PostFFNNorm,
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
	kind, known := hfLayerKinds[sub]
	if !known {
		return "", false
	}
	return LayerName(l, kind), true
}

// ExpectedShapes lists every tensor a checkpoint of this config must hold,
// with its shape in PyTorch (out, in) order.
func (c Config) ExpectedShapes() map[string][]int {
	d, f, q, kv := c.HiddenSize, c.IntermediateSize, c.QDim(), c.KVDim()
	m := map[string][]int{
		NameEmbed:     {c.VocabSize, d},
		NameFinalNorm: {d},
	}
	if !c.TieWordEmbeddings {
		m[NameOutput] = []int{c.VocabSize, d}
	}
	shapes := map[string][]int{
		AttnNorm: {d}, AttnQ: {q, d}, AttnK: {kv, d}, AttnV: {kv, d}, AttnO: {d, q},
		PostAttnNorm: {d}, FFNNorm: {d}, FFNGate: {f, d}, FFNUp: {f, d}, FFNDown: {d, f}, PostFFNNorm: {d},
	}
	for l := 0; l < c.NumHiddenLayers; l++ {
		for kind, s := range shapes {
			m[LayerName(l, kind)] = s
		}
	}
	return m
}

// CheckShape reports whether a tensor has the shape the config expects.
func (c Config) CheckShape(name string, shape []int) error {
	want, ok := c.ExpectedShapes()[name]
	if !ok {
		return fmt.Errorf("model: unexpected tensor %q", name)
	}
	if !equalShape(want, shape) {
		return fmt.Errorf("model: tensor %q has shape %v, config expects %v", name, shape, want)
	}
	return nil
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
