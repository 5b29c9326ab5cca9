// Package model describes Gemma 2 models: the configuration read from a
// Hugging Face config.json, presets for the released sizes, canonical tensor
// names, the safetensors reader and cafeq's own packed model file.
package model

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cafeq/cafeq/model/internal/regfile"
)

// Config holds every Gemma 2 hyperparameter the forward pass uses. Field names
// follow the model's own terms; JSON tags are the Hugging Face keys.
type Config struct {
	ModelType             string  `json:"model_type"`
	HiddenSize            int     `json:"hidden_size"`       // d_model
	IntermediateSize      int     `json:"intermediate_size"` // FFN width
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"`
	HeadDim               int     `json:"head_dim"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	RopeTheta             float64 `json:"rope_theta"`
	AttnLogitSoftcapping  float64 `json:"attn_logit_softcapping"`  // 0: disabled
	FinalLogitSoftcapping float64 `json:"final_logit_softcapping"` // 0: disabled
	SlidingWindow         int     `json:"sliding_window"`          // used by even layers
	QueryPreAttnScalar    float64 `json:"query_pre_attn_scalar"`   // queries scaled by its ^-1/2
	VocabSize             int     `json:"vocab_size"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	TieWordEmbeddings     bool    `json:"tie_word_embeddings"`
	HiddenActivation      string  `json:"hidden_activation"`
	BOSTokenID            int     `json:"bos_token_id"`
	EOSTokenID            int     `json:"eos_token_id"`
	PadTokenID            int     `json:"pad_token_id"`
}

// ErrConfig marks a config.json that is missing a value or holds a nonsensical one.
var ErrConfig = errors.New("invalid config")

// requiredKeys must be present in config.json. Missing soft-caps are an error
// rather than a silent 0 (ollama once read a missing cap as "no cap"); an
// explicit null disables the cap.
var requiredKeys = []string{
	"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
	"num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta",
	"attn_logit_softcapping", "final_logit_softcapping", "sliding_window",
	"query_pre_attn_scalar", "vocab_size",
}

// ParseConfig reads a Hugging Face Gemma 2 config.json and validates it.
func ParseConfig(data []byte) (Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("model: config.json: %w", err)
	}
	for _, k := range requiredKeys {
		if _, ok := raw[k]; !ok {
			return Config{}, fmt.Errorf("model: config.json: missing %q: %w", k, ErrConfig)
		}
	}
	// Hugging Face's Gemma2Config defaults: tied embeddings, tanh GELU, bos 2, eos 1, pad 0.
	c := Config{
		TieWordEmbeddings: true, HiddenActivation: "gelu_pytorch_tanh",
		BOSTokenID: 2, EOSTokenID: 1, PadTokenID: 0, MaxPositionEmbeddings: 8192,
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("model: config.json: %w", err)
	}
	// Some checkpoints name the activation hidden_act only.
	if _, ok := raw["hidden_activation"]; !ok {
		var act string
		if a, ok := raw["hidden_act"]; ok && json.Unmarshal(a, &act) == nil && act != "" {
			c.HiddenActivation = act
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// maxConfigBytes bounds config.json; real ones are about 1 KB.
const maxConfigBytes = 1 << 20

// LoadConfig reads and validates a config.json file.
func LoadConfig(path string) (Config, error) {
	data, err := regfile.ReadFile(path, maxConfigBytes)
	if err != nil {
		return Config{}, fmt.Errorf("model: %w", err)
	}
	return ParseConfig(data)
}

// Validate rejects missing or nonsensical hyperparameters with a message that
// names the key.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("model: config: "+format+": %w", append(args, ErrConfig)...)
	}
	if c.ModelType != "" && c.ModelType != "gemma2" {
		return bad("model_type %q is not gemma2", c.ModelType)
	}
	positive := []struct {
		key string
		v   int
	}{
		{"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads},
		{"num_key_value_heads", c.NumKeyValueHeads}, {"head_dim", c.HeadDim},
		{"sliding_window", c.SlidingWindow}, {"vocab_size", c.VocabSize},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return bad("%s must be positive, got %d", p.key, p.v)
		}
	}
	// Bounds keep buffer sizes sane for hostile files: 27B is 4608 wide, 46 layers.
	const maxDim = 1 << 17
	if c.HiddenSize > maxDim || c.IntermediateSize > 4*maxDim || c.HeadDim > 4096 ||
		c.NumHiddenLayers > 1024 || c.NumAttentionHeads > 1024 || c.VocabSize > 1<<22 {
		return bad("dimensions are implausibly large")
	}
	if c.HeadDim%2 != 0 {
		return bad("head_dim %d must be even for rotary embeddings", c.HeadDim)
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return bad("num_attention_heads %d is not a multiple of num_key_value_heads %d",
			c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	if c.MaxPositionEmbeddings <= 0 || c.MaxPositionEmbeddings > 1<<20 {
		return bad("max_position_embeddings %d must be in [1, %d]", c.MaxPositionEmbeddings, 1<<20)
	}
	// Ranges wide enough for any real model, narrow enough that the numbers
	// stay meaningful in float32: a query_pre_attn_scalar of 1e-45 scales
	// queries by about 1e22, a softcap of 1e-30 divides logits into infinity.
	// Released Gemma 2: eps 1e-6, theta 1e4, scalar 144 or 256, caps 50 and 30.
	ranges := []struct {
		key    string
		v      float64
		lo, hi float64
		zeroOK bool // 0 (or null) disables the feature
	}{
		{"rms_norm_eps", c.RMSNormEps, 1e-12, 1, false},
		{"rope_theta", c.RopeTheta, 1, 1e12, false},
		{"query_pre_attn_scalar", c.QueryPreAttnScalar, 1, 1 << 20, false},
		{"attn_logit_softcapping", c.AttnLogitSoftcapping, 1, 1e6, true},
		{"final_logit_softcapping", c.FinalLogitSoftcapping, 1, 1e6, true},
	}
	for _, r := range ranges {
		if r.zeroOK && r.v == 0 {
			continue
		}
		if !(r.v >= r.lo && r.v <= r.hi) { // also catches NaN
			or0 := ""
			if r.zeroOK {
				or0 = " (or 0/null to disable)"
			}
			return bad("%s must be in [%g, %g]%s, got %g", r.key, r.lo, r.hi, or0, r.v)
		}
	}
	if c.HiddenActivation != "gelu_pytorch_tanh" && c.HiddenActivation != "gelu" {
		return bad("hidden_activation %q is not supported (want gelu_pytorch_tanh)", c.HiddenActivation)
	}
	for _, id := range []struct {
		key string
		v   int
	}{{"bos_token_id", c.BOSTokenID}, {"eos_token_id", c.EOSTokenID}, {"pad_token_id", c.PadTokenID}} {
		if id.v < 0 || id.v >= c.VocabSize {
			return bad("%s %d outside vocabulary of %d", id.key, id.v, c.VocabSize)
		}
	}
	return nil
}

// QDim is the width of the concatenated query heads (and of o_proj's input).
func (c Config) QDim() int { return c.NumAttentionHeads * c.HeadDim }

// KVDim is the width of the concatenated key (or value) heads.
func (c Config) KVDim() int { return c.NumKeyValueHeads * c.HeadDim }

// IsSlidingLayer reports whether layer l uses sliding-window attention: in
// Gemma 2 the even layers are local and the odd ones global.
func (c Config) IsSlidingLayer(l int) bool { return l%2 == 0 }

// ParamCount is the number of weights, counting the tied embedding once.
func (c Config) ParamCount() int64 {
	d, f := int64(c.HiddenSize), int64(c.IntermediateSize)
	q, kv := int64(c.QDim()), int64(c.KVDim())
	perLayer := d*q + 2*d*kv + q*d + 3*d*f + 4*d
	n := int64(c.VocabSize)*d + int64(c.NumHiddenLayers)*perLayer + d
	if !c.TieWordEmbeddings {
		n += int64(c.VocabSize) * d
	}
	return n
}

func gemma2Base() Config {
	return Config{
		ModelType: "gemma2", RMSNormEps: 1e-6, RopeTheta: 10000,
		AttnLogitSoftcapping: 50, FinalLogitSoftcapping: 30, SlidingWindow: 4096,
		VocabSize: 256000, MaxPositionEmbeddings: 8192, TieWordEmbeddings: true,
		HiddenActivation: "gelu_pytorch_tanh", BOSTokenID: 2, EOSTokenID: 1, PadTokenID: 0,
	}
}

// Gemma2_2B is the configuration of google/gemma-2-2b.
func Gemma2_2B() Config {
	c := gemma2Base()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 2304, 9216, 26
	c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.QueryPreAttnScalar = 8, 4, 256, 256
	return c
}

// Gemma2_9B is the configuration of google/gemma-2-9b.
func Gemma2_9B() Config {
	c := gemma2Base()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 3584, 14336, 42
	c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.QueryPreAttnScalar = 16, 8, 256, 256
	return c
}

// Gemma2_27B is the configuration of google/gemma-2-27b. Its query scale is
// 144^-1/2 (d_model / heads), not head_dim^-1/2.
func Gemma2_27B() Config {
	c := gemma2Base()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 4608, 36864, 46
	c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.QueryPreAttnScalar = 32, 16, 128, 144
	return c
}

// Preset returns the configuration of a released size: "2b", "9b" or "27b".
func Preset(name string) (Config, error) {
	switch name {
	case "2b":
		return Gemma2_2B(), nil
	case "9b":
		return Gemma2_9B(), nil
	case "27b":
		return Gemma2_27B(), nil
	}
	return Config{}, fmt.Errorf("model: unknown preset %q (want 2b, 9b or 27b)", name)
}

// HFJSON renders the config as a Hugging Face config.json.
func (c Config) HFJSON() ([]byte, error) {
	type hf struct {
		Architectures []string `json:"architectures"`
		Config
		HiddenAct string `json:"hidden_act"`
		TorchType string `json:"torch_dtype"`
	}
	return json.MarshalIndent(hf{[]string{"Gemma2ForCausalLM"}, c, c.HiddenActivation, "bfloat16"}, "", "  ")
}
