package runtime

import (
	"encoding/json"
	"testing"
)

// FuzzJSONSchema compiles a schema and feeds text through its machine: no
// input may panic, and text the machine accepts as a whole value must be
// valid JSON.
func FuzzJSONSchema(f *testing.F) {
	f.Add([]byte(`{"type":"object","properties":{"a":{"type":"integer"},"b":{"enum":["x",1]}},"required":["a"]}`), []byte(`{"a":1,"b":"x"}`))
	f.Add([]byte(`{}`), []byte(`[1.5e3,"\u00e9",true,null,{}]`))
	f.Fuzz(func(t *testing.T, schema, text []byte) {
		s, err := CompileJSONSchema(schema)
		if err != nil {
			return
		}
		var m jsonMachine
		m.reset(s.root)
		if m.feedAll(text) && m.complete() && !json.Valid(text) {
			t.Fatalf("schema %s accepted invalid JSON %q", schema, text)
		}
	})
}
