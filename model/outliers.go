package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
)

// Outlier channels: real LLM weights have a few input channels far larger
// than the rest, which a trained toy model lacks. WriteOutlierCheckpoint
// plants them with exact symmetries of Gemma 2, so the model computes the
// same function (up to float32 rounding) while its weights are as hard to
// quantize as a real model's. Per layer:
//
//   - attention input: column j of q, k and v times a_j, and the RMSNorm
//     weight before them, which Gemma applies as (1+w), becomes
//     (1+w_j)/a_j - 1;
//   - FFN input: the same with gate, up and the pre-FFN norm (f_j);
//   - down_proj's input: column i of down times u_i and row i of up
//     divided by u_i (GELU(gate)·up is linear in up);
//   - o_proj's input: column q·hd+i of o times r_{h·hd+i} for every query
//     head q of KV head h, and row h·hd+i of v divided by it (attention
//     mixes tokens, never the head_dim axis).
//
// Every scale is log-normal (sigma 0.25) around 1, and one channel in 64
// (at least one) is an outlier, 8 to 32 times larger.

// outlierScales returns n deterministic channel scales.
func outlierScales(n int, rng *rand.Rand) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.Exp(0.25 * rng.NormFloat64())
	}
	for _, i := range rng.Perm(n)[:max(1, n/64)] {
		s[i] *= math.Exp(math.Log(8) + rng.Float64()*math.Log(4))
	}
	return s
}

// layerOutliers are one layer's channel scales (see above).
type layerOutliers struct {
	attnIn, ffnIn, downIn, oIn []float64
}

func newLayerOutliers(cfg Config, l int, seed uint64) layerOutliers {
	rng := rand.New(rand.NewPCG(seed, uint64(l)+0x6f75746c))
	return layerOutliers{
		attnIn: outlierScales(cfg.HiddenSize, rng),
		ffnIn:  outlierScales(cfg.HiddenSize, rng),
		downIn: outlierScales(cfg.IntermediateSize, rng),
		oIn:    outlierScales(cfg.KVDim(), rng),
	}
}

// plant applies the layer's symmetries to tensor kind (data row-major,
// modified in place).
func (s layerOutliers) plant(cfg Config, kind string, shape []int, data []float32) {
	cols := shape[len(shape)-1]
	scaleCols := func(c []float64) {
		for i := range data {
			data[i] = float32(float64(data[i]) * c[i%cols])
		}
	}
	scaleRows := func(c []float64, inverse bool) {
		for i := range data {
			f := c[i/cols]
			if inverse {
				f = 1 / f
			}
			data[i] = float32(float64(data[i]) * f)
		}
	}
	norm := func(c []float64) {
		for j, w := range data {
			data[j] = float32((1+float64(w))/c[j] - 1)
		}
	}
	switch kind {
	case AttnNorm:
		norm(s.attnIn)
	case AttnQ, AttnK:
		scaleCols(s.attnIn)
	case AttnV:
		scaleCols(s.attnIn)
		scaleRows(s.oIn, true)
	case AttnO:
		hd, rep := cfg.HeadDim, cfg.NumAttentionHeads/cfg.NumKeyValueHeads
		c := make([]float64, cols)
		for j := range c {
			q, i := j/hd, j%hd
			c[j] = s.oIn[(q/rep)*hd+i]
		}
		scaleCols(c)
	case FFNNorm:
		norm(s.ffnIn)
	case FFNGate:
		scaleCols(s.ffnIn)
	case FFNUp:
		scaleCols(s.ffnIn)
		scaleRows(s.downIn, true)
	case FFNDown:
		scaleCols(s.downIn)
	}
}

// WriteOutlierCheckpoint writes into dir a float32 copy of ck with planted
// outlier channels (see above), config.json and the tokenizer files of
// ck.Dir. The same seed gives the same weights.
func WriteOutlierCheckpoint(ck *Checkpoint, dir string, seed uint64) error {
	cfg := ck.Config
	if cfg.NumKeyValueHeads <= 0 || cfg.NumAttentionHeads%cfg.NumKeyValueHeads != 0 {
		return fmt.Errorf("model: outliers: %d heads over %d kv heads", cfg.NumAttentionHeads, cfg.NumKeyValueHeads)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	names := ck.Names()
	sort.Strings(names)
	specs := make([]SafetensorsSpec, len(names))
	for i, n := range names {
		t, _ := ck.Tensor(n)
		specs[i] = SafetensorsSpec{Name: HFName(n), DType: F32, Shape: t.Shape}
	}
	w, err := CreateSafetensors(filepath.Join(dir, "model.safetensors"), specs, map[string]string{"format": "pt", "cafeq": "outlier channels"})
	if err != nil {
		return err
	}
	layers := map[int]layerOutliers{}
	for _, n := range names {
		t, _ := ck.Tensor(n)
		data, err := t.Float32s()
		if err != nil {
			w.Abort()
			return err
		}
		if l, kind, ok := SplitLayerName(n); ok {
			s, seen := layers[l]
			if !seen {
				s = newLayerOutliers(cfg, l, seed)
				layers[l] = s
			}
			s.plant(cfg, kind, t.Shape, data)
		}
		out := make([]byte, 4*len(data))
		for i, v := range data {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
		if err := w.Write(out); err != nil {
			w.Abort()
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	for _, f := range []string{"config.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json"} {
		data, err := os.ReadFile(filepath.Join(ck.Dir, f))
		if os.IsNotExist(err) && f != "config.json" {
			continue
		}
		if err != nil {
			return fmt.Errorf("model: outliers: %w", err)
		}
		if err := WriteFileAtomic(filepath.Join(dir, f), data); err != nil {
			return err
		}
	}
	return nil
}
