package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// jsonScanner walks a JSON document without reflection. Gemma's
// tokenizer.json is 17 MB, almost all of it model.vocab and model.merges.
// Decoding it with encoding/json (vocab into a map, merges into a string
// slice) made BenchmarkLoadGemmaJSON take 1.0 s/op on a shared 2-core AMD
// EPYC; scanning those two by hand, together with the merge grouping in
// rankRules, brought it to about 0.35 s of CPU time per load on the same
// machine. Everything small still goes through encoding/json.
type jsonScanner struct {
	data []byte
	pos  int
}

const maxJSONDepth = 1000

func (s *jsonScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("json at byte %d: %s", s.pos, fmt.Sprintf(format, args...))
}

func (s *jsonScanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *jsonScanner) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		if s.pos >= len(s.data) {
			return s.errorf("unexpected end, want %q", c)
		}
		return s.errorf("found %q, want %q", s.data[s.pos], c)
	}
	s.pos++
	return nil
}

// strSpan consumes a string and returns its raw content (between the
// quotes) and whether it contains escapes.
func (s *jsonScanner) strSpan() ([]byte, bool, error) {
	if err := s.expect('"'); err != nil {
		return nil, false, err
	}
	start, escaped := s.pos, false
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; {
		case c == '"':
			s.pos++
			return s.data[start : s.pos-1], escaped, nil
		case c == '\\':
			escaped = true
			s.pos += 2
		case c < 0x20:
			return nil, false, s.errorf("control character in string")
		default:
			s.pos++
		}
	}
	return nil, false, s.errorf("unterminated string")
}

// str consumes a string and returns it unescaped.
func (s *jsonScanner) str() (string, error) {
	start := s.pos
	raw, escaped, err := s.strSpan()
	if err != nil {
		return "", err
	}
	if !escaped {
		return string(raw), nil
	}
	var out string
	if err := json.Unmarshal(s.data[start:s.pos], &out); err != nil {
		return "", s.errorf("%v", err)
	}
	return out, nil
}

func (s *jsonScanner) int() (int, error) {
	s.ws()
	start := s.pos
	for s.pos < len(s.data) && (s.data[s.pos] == '-' || '0' <= s.data[s.pos] && s.data[s.pos] <= '9') {
		s.pos++
	}
	v, err := strconv.Atoi(string(s.data[start:s.pos]))
	if err != nil {
		return 0, s.errorf("want an integer: %v", err)
	}
	return v, nil
}

// object consumes an object, calling fn for each member with the scanner
// at the value; fn must consume the value.
func (s *jsonScanner) object(fn func(key string) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		s.ws()
		key, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		s.ws()
		if err := fn(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or '}' in object")
		}
	}
}

// array consumes an array, calling fn for each element.
func (s *jsonScanner) array(fn func() error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
		s.ws()
		if err := fn(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or ']' in array")
		}
	}
}

// raw consumes any value and returns its bytes.
func (s *jsonScanner) raw() (json.RawMessage, error) {
	s.ws()
	start := s.pos
	if err := s.skip(0); err != nil {
		return nil, err
	}
	return s.data[start:s.pos], nil
}

// skip consumes any value. Skipped values are checked only for structure;
// every value this package uses is decoded strictly.
func (s *jsonScanner) skip(depth int) error {
	if depth > maxJSONDepth {
		return s.errorf("nested too deeply")
	}
	switch c := s.peek(); {
	case c == '{':
		return s.object(func(string) error { return s.skip(depth + 1) })
	case c == '[':
		return s.array(func() error { return s.skip(depth + 1) })
	case c == '"':
		_, _, err := s.strSpan()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == 0:
		return s.errorf("unexpected end")
	default:
		return s.errorf("unexpected %q", c)
	}
}

func (s *jsonScanner) literal(lit string) error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return s.errorf("bad literal, want %s", lit)
	}
	s.pos += len(lit)
	return nil
}

// number consumes -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *jsonScanner) number() error {
	d := s.data
	i := s.pos
	digits := func() int {
		n := 0
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(d) && d[i] == '-' {
		i++
	}
	if i < len(d) && d[i] == '0' {
		i++
	} else if digits() == 0 {
		return s.errorf("bad number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if digits() == 0 {
			return s.errorf("bad number")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if digits() == 0 {
			return s.errorf("bad number")
		}
	}
	s.pos = i
	return nil
}

// decode consumes a value and decodes it with encoding/json.
func (s *jsonScanner) decode(v any) error {
	raw, err := s.raw()
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// end checks that nothing but space follows.
func (s *jsonScanner) end() error {
	if s.peek() != 0 {
		return s.errorf("data after the top-level value")
	}
	return nil
}
