package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// Decode turns ids back into text: "▁" becomes a space, byte pieces become
// raw bytes (fused into UTF-8 with their neighbours), control and unknown
// pieces and out-of-range ids become nothing. Byte sequences that are not
// valid UTF-8 become one U+FFFD per invalid byte.
func (t *Tokenizer) Decode(ids []int) string {
	var buf []byte
	for _, id := range ids {
		buf = t.appendPiece(buf, id)
	}
	return toValid(buf)
}

// TokenBytes returns the bytes id decodes to on its own ("▁" as a space, a
// byte piece as its byte, nothing for control pieces): Decode of a sequence
// is the concatenation of its tokens' bytes, made valid UTF-8.
func (t *Tokenizer) TokenBytes(id int) []byte { return t.appendPiece(nil, id) }

// appendPiece appends the bytes id stands for.
func (t *Tokenizer) appendPiece(dst []byte, id int) []byte {
	if id < 0 || id >= len(t.pieces) {
		return dst
	}
	p := t.pieces[id]
	switch t.types[id] {
	case typeControl, typeUnknown:
		return dst
	case typeByte:
		b, _ := parseBytePiece(p) // validated at load
		return append(dst, b)
	}
	if !t.escapeSpaces {
		return append(dst, p...)
	}
	for {
		i := strings.Index(p, spaceSymbol)
		if i < 0 {
			return append(dst, p...)
		}
		dst = append(dst, p[:i]...)
		dst = append(dst, ' ')
		p = p[i+len(spaceSymbol):]
	}
}

// toValid converts b to a string, replacing each byte that does not belong
// to a valid UTF-8 sequence with U+FFFD.
func toValid(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.Write(b[:size])
		}
		b = b[size:]
	}
	return sb.String()
}

// StreamDecoder decodes one id at a time for streaming output. It never
// splits a multi-byte UTF-8 character: bytes of an incomplete character are
// held until the character is complete, and become U+FFFD as soon as they
// can no longer complete one. The concatenation of every Add and the final
// Flush equals Decode of all the ids.
type StreamDecoder struct {
	t       *Tokenizer
	pending []byte
}

// NewStreamDecoder starts a stream.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder { return &StreamDecoder{t: t} }

// Add returns the text that id completes (possibly "").
func (d *StreamDecoder) Add(id int) string {
	d.pending = d.t.appendPiece(d.pending, id)
	n := completePrefix(d.pending)
	if n == 0 {
		return ""
	}
	s := toValid(d.pending[:n])
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return s
}

// Flush returns whatever is held (as U+FFFD: it can no longer complete) and
// resets the decoder.
func (d *StreamDecoder) Flush() string {
	s := toValid(d.pending)
	d.pending = d.pending[:0]
	return s
}

// completePrefix returns how many leading bytes of b can be emitted now: all
// but a trailing, so far valid, start of a multi-byte character.
func completePrefix(b []byte) int {
	n := len(b)
	for k := 1; k <= utf8.UTFMax-1 && k <= n; k++ {
		if utf8.RuneStart(b[n-k]) {
			if !utf8.FullRune(b[n-k:]) {
				return n - k
			}
			break
		}
	}
	return n
}
