package runtime

import (
	"math"
	"slices"

	"github.com/cafeq/cafeq/model/tokenizer"
)

// JSONConstraint makes a generation's text a JSON value that a JSONSchema
// accepts: before each draw it masks every token whose bytes would make the
// text so far stop being a prefix of such a value, and it allows the stop
// tokens only once the value is complete. After the value only a stop token
// may follow, so a reply that ends by a stop token always parses; one cut
// short by MaxTokens or the context does not.
type JSONConstraint struct {
	vocab *tokenBytes
	stop  []int
	saved []float32 // the stop tokens' logits before masking
	m     jsonMachine
	try   jsonMachine // scratch for testing candidates
}

// NewJSONConstraint starts a constraint for schema over e's vocabulary.
func (e *Engine) NewJSONConstraint(schema *JSONSchema) *JSONConstraint {
	return newJSONConstraint(schema, e.vocabBytes(), e.StopTokens())
}

func newJSONConstraint(schema *JSONSchema, vocab *tokenBytes, stop []int) *JSONConstraint {
	c := &JSONConstraint{vocab: vocab, stop: stop, saved: make([]float32, len(stop))}
	c.m.reset(schema.root)
	return c
}

// Mask sets the logits of every token that may not come next to -Inf and
// returns how many may.
func (c *JSONConstraint) Mask(logits []float32) int {
	var firstOK [256]bool
	for b := range firstOK {
		c.try.copyFrom(&c.m)
		firstOK[b] = c.try.feed(byte(b))
	}
	// Inside a string (not a checked key, not an escape) a token without a
	// quote, backslash or control byte only extends it: most of a large
	// vocabulary, allowed without running the machine.
	inPlainString := false
	if n := len(c.m.stack); n > 0 {
		f := c.m.stack[n-1]
		inPlainString = f.kind == frameString && f.st == strChar && !(f.key && f.node != nil && f.node.closed)
	}
	for i, id := range c.stop {
		if id >= 0 && id < len(logits) {
			c.saved[i] = logits[id]
		}
	}
	allowed := 0
	for id := range logits {
		ok := false
		if id < len(c.vocab.text) {
			t := c.vocab.text[id]
			switch {
			case len(t) == 0 || !firstOK[t[0]]:
			case len(t) == 1 || inPlainString && c.vocab.plain[id]:
				ok = true
			default:
				c.try.copyFrom(&c.m)
				ok = c.try.feedAll(t)
			}
		}
		if ok {
			allowed++
		} else {
			logits[id] = float32(math.Inf(-1))
		}
	}
	// Stop tokens end the reply whatever they decode to: allowed exactly
	// when the value is complete.
	complete := c.m.complete()
	for i, id := range c.stop {
		if id < 0 || id >= len(logits) {
			continue
		}
		if !math.IsInf(float64(logits[id]), -1) {
			allowed--
		}
		logits[id] = float32(math.Inf(-1))
		if complete {
			logits[id] = c.saved[i]
			allowed++
		}
	}
	return allowed
}

// Accept advances the constraint past id, which Mask allowed.
func (c *JSONConstraint) Accept(id int) {
	if id < len(c.vocab.text) && !slices.Contains(c.stop, id) {
		c.m.feedAll(c.vocab.text[id])
	}
}

// Complete reports whether the text so far is a whole value.
func (c *JSONConstraint) Complete() bool { return c.m.complete() }

// tokenBytes are the bytes each token id decodes to, made once per engine.
type tokenBytes struct {
	text  [][]byte
	plain []bool // no quote, backslash or control byte: only extends a string
}

func newTokenBytes(tok *tokenizer.Tokenizer) *tokenBytes {
	tb := &tokenBytes{text: make([][]byte, tok.VocabSize()), plain: make([]bool, tok.VocabSize())}
	for id := range tb.text {
		t := tok.TokenBytes(id)
		tb.text[id] = t
		tb.plain[id] = !slices.ContainsFunc(t, func(b byte) bool { return b == '"' || b == '\\' || b < 0x20 })
	}
	return tb
}

func (e *Engine) vocabBytes() *tokenBytes {
	e.vocabOnce.Do(func() { e.vocab = newTokenBytes(e.Tokenizer) })
	return e.vocab
}

// frameKind is what a jsonMachine stack frame is reading.
type frameKind uint8

const (
	frameValue   frameKind = iota // before a value: whitespace, then its first byte
	frameObject                   // between an object's tokens
	frameArray                    // between an array's tokens
	frameString                   // inside a string (a value or an object key)
	frameNumber                   // inside a number
	frameLiteral                  // inside true, false, null or an enum value
)

// Sub-states of frameObject, frameArray, frameString and frameNumber.
const (
	objStart   uint8 = iota // after '{': a key or '}'
	objColon                // after a key: ':'
	objNext                 // after a value: ',' or '}'
	objKeyNext              // after ',': a key

	arrStart // after '[': a value or ']'
	arrNext  // after a value: ',' or ']'
	arrValue // after ',': a value

	strChar   // plain characters
	strEscape // after '\'
	strHex    // in \uXXXX, pos hex digits read

	numMinus     // after '-'
	numZero      // after a leading 0
	numInt       // integer digits
	numDot       // after '.'
	numFrac      // fraction digits
	numExp       // after 'e'
	numExpSign   // after the exponent's sign
	numExpDigits // exponent digits
)

// frame is one level of the value being read. It is a plain value, so a
// machine is copied with copy().
type frame struct {
	kind    frameKind
	st      uint8
	key     bool        // frameString: an object key, checked against node.props
	intOnly bool        // frameNumber: no fraction or exponent
	node    *schemaNode // the value's schema (for a key: the object's)
	seen    uint64      // frameObject: properties given so far
	prop    int         // frameObject: the property whose value comes next; -1: any
	cand    uint64      // key or literal: candidates still matching
	pos     int         // key or literal: bytes matched; strHex: digits read
	lits    [][]byte    // frameLiteral: the candidates
}

// Whitespace and nesting limits: a model stuck emitting spaces or brackets
// is cut off instead of running to MaxTokens.
const (
	maxJSONWhitespace = 8
	maxJSONDepth      = 32
)

// jsonMachine is a pushdown recogniser of JSON prefixes under a schema.
type jsonMachine struct {
	stack []frame
	ws    int // consecutive whitespace bytes
}

func (m *jsonMachine) reset(root *schemaNode) {
	m.stack = append(m.stack[:0], frame{kind: frameValue, node: root})
	m.ws = 0
}

func (m *jsonMachine) copyFrom(o *jsonMachine) {
	m.stack = append(m.stack[:0], o.stack...)
	m.ws = o.ws
}

// complete: a whole value has been read (a number or an enum value may
// still be extended, but need not be).
func (m *jsonMachine) complete() bool {
	switch len(m.stack) {
	case 0:
		return true
	case 1:
		return m.stack[0].accepting()
	}
	return false
}

func (f *frame) accepting() bool {
	switch f.kind {
	case frameNumber:
		return f.st == numZero || f.st == numInt || f.st == numFrac || f.st == numExpDigits
	case frameLiteral:
		for i, l := range f.lits {
			if f.cand&(1<<i) != 0 && len(l) == f.pos {
				return true
			}
		}
	}
	return false
}

func (m *jsonMachine) feedAll(b []byte) bool {
	for _, c := range b {
		if !m.feed(c) {
			return false
		}
	}
	return true
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// feed reads one byte and reports whether the text is still a valid prefix.
func (m *jsonMachine) feed(c byte) bool {
	if n := len(m.stack); n > 0 && m.stack[n-1].kind == frameString {
		m.ws = 0
	} else if isJSONSpace(c) {
		m.ws++
		if m.ws > maxJSONWhitespace {
			return false
		}
	} else {
		m.ws = 0
	}
	for {
		if len(m.stack) == 0 {
			return false // the value is complete; only a stop token may follow
		}
		f := &m.stack[len(m.stack)-1]
		switch f.kind {
		case frameValue:
			if isJSONSpace(c) {
				return true
			}
			return m.startValue(f, c)
		case frameObject:
			return m.objectByte(f, c)
		case frameArray:
			if isJSONSpace(c) {
				return true
			}
			switch {
			case c == ']' && f.st != arrValue:
				m.pop()
				return true
			case c == ',' && f.st == arrNext:
				f.st = arrValue
				return true
			case f.st == arrStart || f.st == arrValue:
				f.st = arrNext
				return m.push(frame{kind: frameValue, node: f.node.itemSchema()}) && m.feed(c)
			}
			return false
		case frameString:
			return m.stringByte(f, c)
		case frameNumber, frameLiteral:
			if f.kind == frameNumber && f.numberByte(c) || f.kind == frameLiteral && f.literalByte(c) {
				return true
			}
			if !f.accepting() {
				return false
			}
			m.pop() // c ends the value; the enclosing frame reads it
		}
	}
}

func (m *jsonMachine) push(f frame) bool {
	if len(m.stack) >= maxJSONDepth {
		return false
	}
	m.stack = append(m.stack, f)
	return true
}

func (m *jsonMachine) pop() { m.stack = m.stack[:len(m.stack)-1] }

func (n *schemaNode) itemSchema() *schemaNode {
	if n == nil {
		return nil
	}
	return n.items
}

func (n *schemaNode) typeSet() jsonType {
	if n == nil {
		return typeAny
	}
	return n.types
}

var (
	literalBools = [][]byte{[]byte("true"), []byte("false")}
	literalNull  = [][]byte{[]byte("null")}
)

// startValue turns the frameValue f into the frame for the value that c
// starts.
func (m *jsonMachine) startValue(f *frame, c byte) bool {
	n, t := f.node, f.node.typeSet()
	if n != nil && n.enum != nil {
		*f = frame{kind: frameLiteral, lits: n.enum, cand: 1<<len(n.enum) - 1}
		return f.literalByte(c)
	}
	switch {
	case c == '{' && t&typeObject != 0:
		*f = frame{kind: frameObject, st: objStart, node: n, prop: -1}
		return true
	case c == '[' && t&typeArray != 0:
		*f = frame{kind: frameArray, st: arrStart, node: n}
		return true
	case c == '"' && t&typeString != 0:
		*f = frame{kind: frameString, st: strChar}
		return true
	case (c == '-' || c >= '0' && c <= '9') && t&(typeNumber|typeInteger) != 0:
		*f = frame{kind: frameNumber, intOnly: t&typeNumber == 0}
		switch {
		case c == '-':
			f.st = numMinus
		case c == '0':
			f.st = numZero
		default:
			f.st = numInt
		}
		return true
	case (c == 't' || c == 'f') && t&typeBoolean != 0:
		*f = frame{kind: frameLiteral, lits: literalBools, cand: 3}
		return f.literalByte(c)
	case c == 'n' && t&typeNull != 0:
		*f = frame{kind: frameLiteral, lits: literalNull, cand: 1}
		return f.literalByte(c)
	}
	return false
}

func (m *jsonMachine) objectByte(f *frame, c byte) bool {
	if isJSONSpace(c) {
		return true
	}
	n := f.node
	switch f.st {
	case objStart, objKeyNext:
		if c == '}' && f.st == objStart {
			return m.closeObject(f)
		}
		if c != '"' {
			return false
		}
		key := frame{kind: frameString, st: strChar, key: true, node: n}
		if n != nil && n.closed {
			key.cand = (uint64(1)<<len(n.props) - 1) &^ f.seen
			if key.cand == 0 {
				return false
			}
		}
		f.st = objColon
		return m.push(key)
	case objColon:
		if c != ':' {
			return false
		}
		var child *schemaNode
		if f.prop >= 0 {
			child = n.propNodes[f.prop]
		}
		f.st = objNext
		return m.push(frame{kind: frameValue, node: child})
	case objNext:
		switch c {
		case '}':
			return m.closeObject(f)
		case ',':
			if n != nil && n.closed && (uint64(1)<<len(n.props)-1)&^f.seen == 0 {
				return false // every property is given
			}
			f.st = objKeyNext
			return true
		}
	}
	return false
}

func (m *jsonMachine) closeObject(f *frame) bool {
	if n := f.node; n != nil && f.seen&n.required != n.required {
		return false
	}
	m.pop()
	return true
}

func (m *jsonMachine) stringByte(f *frame, c byte) bool {
	constrained := f.key && f.node != nil && f.node.closed
	switch f.st {
	case strEscape:
		switch c {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			f.st = strChar
		case 'u':
			f.st, f.pos = strHex, 0
		default:
			return false
		}
		return true
	case strHex:
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
		if f.pos++; f.pos == 4 {
			f.st, f.pos = strChar, 0
		}
		return true
	}
	switch {
	case c == '"':
		if f.key {
			return m.closeKey(f)
		}
		m.pop()
		return true
	case c < 0x20:
		return false
	case c == '\\':
		if constrained {
			return false // property names are matched unescaped
		}
		f.st = strEscape
		return true
	case constrained:
		var next uint64
		for i, p := range f.node.props {
			if f.cand&(1<<i) != 0 && f.pos < len(p) && p[f.pos] == c {
				next |= 1 << i
			}
		}
		f.cand, f.pos = next, f.pos+1
		return next != 0
	}
	return true
}

// closeKey ends an object key and records which property it names.
func (m *jsonMachine) closeKey(f *frame) bool {
	n, prop := f.node, -1
	if n != nil && n.closed {
		for i, p := range n.props {
			if f.cand&(1<<i) != 0 && len(p) == f.pos {
				prop = i
			}
		}
		if prop < 0 {
			return false
		}
	}
	m.pop()
	obj := &m.stack[len(m.stack)-1]
	obj.prop = prop
	if prop >= 0 {
		obj.seen |= 1 << prop
	}
	return true
}

func (f *frame) literalByte(c byte) bool {
	var next uint64
	for i, l := range f.lits {
		if f.cand&(1<<i) != 0 && f.pos < len(l) && l[f.pos] == c {
			next |= 1 << i
		}
	}
	if next == 0 {
		return false
	}
	f.cand, f.pos = next, f.pos+1
	return true
}

// numberByte advances a number by c, or reports false when c cannot extend
// it (the caller then decides whether the number ended or is invalid).
func (f *frame) numberByte(c byte) bool {
	digit := c >= '0' && c <= '9'
	switch f.st {
	case numMinus:
		switch {
		case c == '0':
			f.st = numZero
		case digit:
			f.st = numInt
		default:
			return false
		}
	case numZero, numInt:
		switch {
		case digit && f.st == numInt:
		case c == '.' && !f.intOnly:
			f.st = numDot
		case (c == 'e' || c == 'E') && !f.intOnly:
			f.st = numExp
		default:
			return false
		}
	case numDot, numFrac:
		switch {
		case digit:
			f.st = numFrac
		case (c == 'e' || c == 'E') && f.st == numFrac:
			f.st = numExp
		default:
			return false
		}
	case numExp:
		switch {
		case c == '+' || c == '-':
			f.st = numExpSign
		case digit:
			f.st = numExpDigits
		default:
			return false
		}
	case numExpSign, numExpDigits:
		if !digit {
			return false
		}
		f.st = numExpDigits
	}
	return true
}
