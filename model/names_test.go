package model

import (
	"slices"
	"testing"
)

// TestLayerTensors pins the per-layer table against Gemma 2 2B's published
// shapes and Hugging Face names, and checks that the name maps are inverses.
func TestLayerTensors(t *testing.T) {
	c := Gemma2_2B()
	want := map[string]struct {
		hf    string
		shape []int
		in    Input
	}{
		AttnNorm:     {"input_layernorm", []int{2304}, NoInput},
		AttnQ:        {"self_attn.q_proj", []int{2048, 2304}, AttnIn},
		AttnK:        {"self_attn.k_proj", []int{1024, 2304}, AttnIn},
		AttnV:        {"self_attn.v_proj", []int{1024, 2304}, AttnIn},
		AttnO:        {"self_attn.o_proj", []int{2304, 2048}, AttnOut},
		PostAttnNorm: {"post_attention_layernorm", []int{2304}, NoInput},
		FFNNorm:      {"pre_feedforward_layernorm", []int{2304}, NoInput},
		FFNGate:      {"mlp.gate_proj", []int{9216, 2304}, FFNIn},
		FFNUp:        {"mlp.up_proj", []int{9216, 2304}, FFNIn},
		FFNDown:      {"mlp.down_proj", []int{2304, 9216}, DownIn},
		PostFFNNorm:  {"post_feedforward_layernorm", []int{2304}, NoInput},
	}
	if len(LayerTensors) != len(want) {
		t.Fatalf("%d layer tensors, want %d", len(LayerTensors), len(want))
	}
	for _, lt := range LayerTensors {
		w, ok := want[lt.Kind]
		if !ok || lt.HF != w.hf || !slices.Equal(lt.Shape(c), w.shape) || lt.Input != w.in {
			t.Errorf("%s: %q %v %v, want %+v", lt.Kind, lt.HF, lt.Shape(c), lt.Input, w)
		}
		// A matrix's input width is its column count.
		if lt.Linear() && (lt.Shape(c)[1] != map[Input]int{AttnIn: 2304, AttnOut: 2048, FFNIn: 2304, DownIn: 9216}[lt.Input] || lt.Input.Width(c) != lt.Shape(c)[1]) {
			t.Errorf("%s reads %s but has %d columns", lt.Kind, lt.Input, lt.Shape(c)[1])
		}
	}
	if got := KindsReading(AttnIn); !slices.Equal(got, []string{AttnQ, AttnK, AttnV}) {
		t.Errorf("KindsReading(AttnIn) = %v", got)
	}
	if !slices.Equal(LinearKinds, []string{AttnQ, AttnK, AttnV, AttnO, FFNGate, FFNUp, FFNDown}) {
		t.Errorf("LinearKinds = %v", LinearKinds)
	}
	if got := FFNIn.TransformName(3); got != "layers.3.ffn_in.inv" {
		t.Errorf("transform name %q", got)
	}
	shapes := c.ExpectedShapes()
	if len(shapes) != 2+11*c.NumHiddenLayers {
		t.Errorf("%d expected tensors", len(shapes))
	}
	for name := range shapes {
		hf := HFName(name)
		if back, ok := CanonicalName(hf); !ok || back != name {
			t.Errorf("%s -> %s -> %s, %v", name, hf, back, ok)
		}
	}
	if got := HFName(LayerName(25, FFNDown)); got != "model.layers.25.mlp.down_proj.weight" {
		t.Errorf("HFName = %q", got)
	}
	for _, bad := range []string{"model.layers.1.mlp.gate_proj", "model.layers.01.mlp.up_proj.weight", "model.layers.1.mlp.foo.weight"} {
		if n, ok := CanonicalName(bad); ok {
			t.Errorf("CanonicalName(%q) = %q", bad, n)
		}
	}
}
