package runtime

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cafeq/cafeq/model/tokenizer"
)

func mustSchema(t testing.TB, src string) *JSONSchema {
	t.Helper()
	s, err := CompileJSONSchema([]byte(src))
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return s
}

// machineAccepts feeds text byte by byte: ok is whether every byte was a
// valid continuation, complete whether the text is a whole value.
func machineAccepts(s *JSONSchema, text string) (ok, complete bool) {
	var m jsonMachine
	m.reset(s.root)
	if !m.feedAll([]byte(text)) {
		return false, false
	}
	return true, m.complete()
}

func TestJSONMachine(t *testing.T) {
	person := `{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
		"tags":{"type":"array","items":{"enum":["a","bc",1]}},"ok":{"type":["boolean","null"]}},"required":["name","age"]}`
	cases := []struct {
		schema, text string
		ok, complete bool
	}{
		{`{}`, `{"a": [1, -2.5e+3, true, null, "x\u00e9\n"]}`, true, true},
		{`{}`, ` 12`, true, true},
		{`{}`, `12 `, false, false}, // after the value only a stop token may follow
		{`{}`, `{"a":1}}`, false, false},
		{`{}`, `{"a" 1}`, false, false},
		{`{}`, `[1,]`, false, false},
		{`{}`, `01`, false, false},
		{`{}`, `"a` + "\x01", false, false},
		{`{}`, `"\x"`, false, false},
		{`{}`, `tru`, true, false},
		{`{"type":"object"}`, `[1]`, false, false},
		{`{"type":"integer"}`, `1.5`, false, false},
		{`{"type":"integer"}`, `-0`, true, true},
		{`{"type":"number"}`, `1.5e-7`, true, true},
		{`{"type":"number"}`, `1.`, true, false},
		{person, `{"name":"Ann","age":30}`, true, true},
		{person, `{"age":30,"name":"Ann","tags":["bc",1],"ok":null}`, true, true},
		{person, `{"name":"Ann"}`, false, false},                    // age is required
		{person, `{"name":"Ann","name":"Bob"`, false, false},        // no property twice
		{person, `{"nam":1`, false, false},                          // not a property
		{person, `{"name":"A","age":1,"tags":["b"]}`, false, false}, // not in the enum
		{person, `{"name":"A","age":1.5}`, false, false},
		{person, `{"name":"A","age":1,"ok":true,"tags":[],`, false, false}, // nothing left to give
		{`{"type":"array","items":{"type":"string"}}`, `["a", "b"]`, true, true},
		{`{"type":"array","items":{"type":"string"}}`, `["a", 1]`, false, false},
		{`{"enum":[1,12]}`, `1`, true, true},
		{`{"enum":[1,12]}`, `12`, true, true},
		{`{"enum":[1,12]}`, `13`, false, false},
		{`{"type":"object"}`, `{` + strings.Repeat(" ", maxJSONWhitespace+1), false, false},
		{`{"type":"string"}`, `"` + strings.Repeat(" ", maxJSONWhitespace+1) + `"`, true, true},
	}
	for _, c := range cases {
		ok, complete := machineAccepts(mustSchema(t, c.schema), c.text)
		if ok != c.ok || complete != c.complete {
			t.Errorf("schema %s, text %q: ok %v complete %v, want %v %v", c.schema, c.text, ok, complete, c.ok, c.complete)
		}
	}
}

func TestCompileJSONSchemaRefuses(t *testing.T) {
	for _, src := range []string{
		`[]`, `{"type":"float"}`, `{"anyOf":[{}]}`, `{"type":"string","pattern":"a+"}`,
		`{"properties":{"a":{}},"required":["b"]}`, `{"enum":[]}`, `{"additionalProperties":{"type":"string"}}`,
		`{"properties":{"a\"b":{}}}`, strings.Repeat(`{"items":`, 40) + `{}` + strings.Repeat(`}`, 40),
	} {
		if _, err := CompileJSONSchema([]byte(src)); err == nil {
			t.Errorf("%s compiled", src)
		}
	}
	if _, err := CompileJSONSchema([]byte(`{"title":"t","description":"d","$schema":"x","type":"object","additionalProperties":false}`)); err != nil {
		t.Errorf("annotations refused: %v", err)
	}
}

// conforms checks a decoded value against the schema subset, independently
// of the machine.
func conforms(n *schemaNode, v any) bool {
	if n == nil {
		return true
	}
	if n.enum != nil {
		enc, _ := json.Marshal(v)
		for _, e := range n.enum {
			if bytes.Equal(e, enc) {
				return true
			}
		}
		return false
	}
	switch x := v.(type) {
	case map[string]any:
		if n.types&typeObject == 0 {
			return false
		}
		var seen uint64
		for k, val := range x {
			if !n.closed {
				continue
			}
			i := slices.Index(n.props, k)
			if i < 0 || !conforms(n.propNodes[i], val) {
				return false
			}
			seen |= 1 << i
		}
		return seen&n.required == n.required
	case []any:
		if n.types&typeArray == 0 {
			return false
		}
		for _, e := range x {
			if !conforms(n.items, e) {
				return false
			}
		}
		return true
	case string:
		return n.types&typeString != 0
	case json.Number:
		if n.types&typeNumber != 0 {
			return true
		}
		return n.types&typeInteger != 0 && !strings.ContainsAny(string(x), ".eE")
	case bool:
		return n.types&typeBoolean != 0
	case nil:
		return n.types&typeNull != 0
	}
	return false
}

// TestJSONConstraintWalks draws tokens at random from what the mask allows,
// favouring structure so that walks end, and checks that every walk ended
// by a stop token is valid JSON matching its schema.
func TestJSONConstraintWalks(t *testing.T) {
	tok, err := tokenizer.Load("../testdata/shakespeare-gemma2")
	if err != nil {
		t.Fatal(err)
	}
	vocab := newTokenBytes(tok)
	stop := ChatStopTokens(tok)
	schemas := []string{
		`{"type":"object"}`,
		`{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"score":{"type":"number"},
			"tags":{"type":"array","items":{"type":"string"}},"mood":{"enum":["happy","sad",3]},"ok":{"type":["boolean","null"]}},
			"required":["name","age","mood"]}`,
		`{"type":"array","items":{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]}}`,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, src := range schemas {
		schema := mustSchema(t, src)
		ended := 0
		for walk := range 40 {
			c := newJSONConstraint(schema, vocab, stop)
			logits := make([]float32, len(vocab.text))
			var out []byte
			stopped := false
			for range 300 {
				for id := range logits {
					l := rng.Float32()
					if t := vocab.text[id]; bytes.ContainsAny(t, `"}],:0123456789`) || slices.Contains(stop, id) {
						l += 1.5
					}
					logits[id] = l
				}
				if c.Mask(logits) == 0 {
					t.Fatalf("schema %s walk %d: nothing allowed after %q", src, walk, out)
				}
				id := Argmax(logits)
				if slices.Contains(stop, id) {
					stopped = true
					break
				}
				c.Accept(id)
				out = append(out, vocab.text[id]...)
			}
			if !stopped {
				continue
			}
			ended++
			dec := json.NewDecoder(bytes.NewReader(out))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil || !json.Valid(out) {
				t.Fatalf("schema %s: %q does not parse: %v", src, out, err)
			}
			if !conforms(schema.root, v) {
				t.Fatalf("schema %s: %q does not match", src, out)
			}
		}
		if ended < 10 {
			t.Errorf("schema %s: only %d of 40 walks ended", src, ended)
		}
	}
}

// TestJSONConstraintGemmaVocab times one mask over the real 256k-entry
// Gemma vocabulary inside a string, where the most tokens pass.
func TestJSONConstraintGemmaVocab(t *testing.T) {
	data, err := os.ReadFile("../testdata/fetched/gemma-tokenizer/tokenizer.json")
	if err != nil {
		t.Skip("real Gemma tokenizer not fetched (make fixtures)")
	}
	tok, err := tokenizer.FromHuggingFaceJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	vocab := newTokenBytes(tok)
	c := newJSONConstraint(JSONObjectSchema, vocab, ChatStopTokens(tok))
	for _, b := range []byte(`{"key": "some text `) {
		c.m.feed(b)
	}
	logits := make([]float32, len(vocab.text))
	start := time.Now()
	allowed := c.Mask(logits)
	t.Logf("mask over %d tokens inside a string: %d allowed, %v", len(logits), allowed, time.Since(start))
	quote, _ := tok.PieceID(`"`)
	if allowed < len(logits)/2 || math.IsInf(float64(logits[quote]), -1) {
		t.Errorf("inside a string only %d of %d tokens allowed (quote allowed: %v)", allowed, len(logits), !math.IsInf(float64(logits[quote]), -1))
	}
}
