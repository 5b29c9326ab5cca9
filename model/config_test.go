package model

import (
	"errors"
	"strings"
	"testing"
)

func TestParseConfigGolden(t *testing.T) {
	c, err := LoadConfig("../testdata/gemma2-tiny/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.HiddenSize != 256 || c.NumHiddenLayers != 4 || c.NumKeyValueHeads != 2 || c.HeadDim != 64 ||
		c.SlidingWindow != 16 || c.QueryPreAttnScalar != 64 || c.AttnLogitSoftcapping != 50 ||
		c.FinalLogitSoftcapping != 30 || c.VocabSize != 512 || !c.TieWordEmbeddings {
		t.Fatalf("config read wrongly: %+v", c)
	}
}

func TestPresetsValidate(t *testing.T) {
	for _, name := range []string{"2b", "9b", "27b"} {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		data, err := c.HFJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(data)
		if err != nil {
			t.Fatalf("%s: round trip: %v", name, err)
		}
		if back != c {
			t.Errorf("%s: round trip changed config:\n%+v\n%+v", name, back, c)
		}
	}
	if got := Gemma2_2B().ParamCount(); got < 2_600_000_000 || got > 2_700_000_000 {
		t.Errorf("2B param count %d, want about 2.61e9", got)
	}
	if Gemma2_27B().QueryPreAttnScalar != 144 {
		t.Error("27B query scale must come from query_pre_attn_scalar = 144")
	}
}

func TestParseConfigRejects(t *testing.T) {
	good := `{"hidden_size":256,"intermediate_size":768,"num_hidden_layers":4,"num_attention_heads":4,
	"num_key_value_heads":2,"head_dim":64,"rms_norm_eps":1e-6,"rope_theta":10000,"attn_logit_softcapping":50,
	"final_logit_softcapping":30,"sliding_window":16,"query_pre_attn_scalar":64,"vocab_size":512}`
	if _, err := ParseConfig([]byte(good)); err != nil {
		t.Fatalf("good config rejected: %v", err)
	}
	cases := map[string]string{
		"missing softcap":   strings.Replace(good, `"final_logit_softcapping":30,`, "", 1),
		"zero heads":        strings.Replace(good, `"num_attention_heads":4`, `"num_attention_heads":0`, 1),
		"gqa ratio":         strings.Replace(good, `"num_key_value_heads":2`, `"num_key_value_heads":3`, 1),
		"negative eps":      strings.Replace(good, `"rms_norm_eps":1e-6`, `"rms_norm_eps":-1`, 1),
		"odd head dim":      strings.Replace(good, `"head_dim":64`, `"head_dim":63`, 1),
		"huge":              strings.Replace(good, `"hidden_size":256`, `"hidden_size":100000000`, 1),
		"wrong type":        strings.Replace(good, `"hidden_size":256`, `"hidden_size":"256"`, 1),
		"zero query scalar": strings.Replace(good, `"query_pre_attn_scalar":64`, `"query_pre_attn_scalar":0`, 1),
		"tiny query scalar": strings.Replace(good, `"query_pre_attn_scalar":64`, `"query_pre_attn_scalar":1e-45`, 1),
		"tiny softcap":      strings.Replace(good, `"attn_logit_softcapping":50`, `"attn_logit_softcapping":1e-30`, 1),
		"huge softcap":      strings.Replace(good, `"final_logit_softcapping":30`, `"final_logit_softcapping":1e300`, 1),
		"huge eps":          strings.Replace(good, `"rms_norm_eps":1e-6`, `"rms_norm_eps":1e30`, 1),
		"tiny eps":          strings.Replace(good, `"rms_norm_eps":1e-6`, `"rms_norm_eps":1e-300`, 1),
		"tiny rope theta":   strings.Replace(good, `"rope_theta":10000`, `"rope_theta":1e-30`, 1),
		"no positions":      strings.Replace(good, `{`, `{"max_position_embeddings":0,`, 1),
		"negative pos":      strings.Replace(good, `{`, `{"max_position_embeddings":-5,`, 1),
		"pad outside vocab": strings.Replace(good, `{`, `{"pad_token_id":512,`, 1),
		"not json":          "{",
		"other model":       strings.Replace(good, `{`, `{"model_type":"llama",`, 1),
	}
	for name, text := range cases {
		if _, err := ParseConfig([]byte(text)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name != "not json" && name != "wrong type" && !errors.Is(err, ErrConfig) {
			t.Errorf("%s: error %v does not wrap ErrConfig", name, err)
		}
	}
	// An explicit null disables a soft-cap.
	c, err := ParseConfig([]byte(strings.Replace(good, `"attn_logit_softcapping":50`, `"attn_logit_softcapping":null`, 1)))
	if err != nil || c.AttnLogitSoftcapping != 0 {
		t.Errorf("null softcap: %v %v", c.AttnLogitSoftcapping, err)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, p := range []string{"../testdata/gemma2-tiny/config.json", "../testdata/shakespeare-gemma2/config.json"} {
		if data, err := readFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"hidden_size":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("ParseConfig accepted a config Validate rejects: %v", err)
			}
			_ = c.ExpectedShapes()
		}
	})
}
