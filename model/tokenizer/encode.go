package tokenizer

import "unicode/utf8"

// Encode tokenizes text. It never adds BOS. Invalid UTF-8 bytes are treated
// as U+FFFD, as SentencePiece's normalizer does.
func (t *Tokenizer) Encode(text string) []int {
	e := encoder{t: t}
	out := make([]int, 0, len(text)/3+1)
	var norm []byte
	segment := func(from, to int) {
		if from < to {
			norm = t.normalize(norm[:0], text[from:to])
			out = e.bpe(string(norm), out)
		}
	}
	if t.rawMatch == nil && t.normMatch == nil {
		segment(0, len(text))
		return out
	}
	start := 0
	for i := 0; i < len(text); {
		if n, id := t.matchAt(text, i); n > 0 {
			segment(start, i)
			out = append(out, int(id))
			i += n
			start = i
			continue
		}
		_, size := utf8.DecodeRuneInString(text[i:])
		i += size
	}
	segment(start, len(text))
	return out
}

// normalize appends the normalized form of s to dst: ' ' -> "▁" (when
// escaping spaces) and each invalid UTF-8 byte -> U+FFFD.
func (t *Tokenizer) normalize(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		n, size := t.normRune(s, i)
		dst = append(dst, n...)
		i += size
	}
	return dst
}

// normRune returns the normalized form of the character at s[i] and how
// many bytes of s it covers.
func (t *Tokenizer) normRune(s string, i int) (string, int) {
	if c := s[i]; c < utf8.RuneSelf {
		if c == ' ' && t.escapeSpaces {
			return spaceSymbol, 1
		}
		return s[i : i+1], 1
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size == 1 {
		return "\uFFFD", 1
	}
	return s[i : i+size], size
}

// matchAt finds the longest atomic piece starting at text[i]. It returns
// the number of bytes of text it covers (0 for none) and its id.
func (t *Tokenizer) matchAt(text string, i int) (int, int32) {
	best, bestID := 0, int32(-1)
	if tr := t.rawMatch; tr != nil && tr.first[text[i]] {
		node := int32(0)
		for j := i; j < len(text); j++ {
			var ok bool
			if node, ok = tr.step(node, text[j]); !ok {
				break
			}
			if id := tr.term[node]; id >= 0 {
				best, bestID = j+1-i, id
			}
		}
	}
	if tr := t.normMatch; tr != nil {
		if n, _ := t.normRune(text, i); !tr.first[n[0]] {
			return best, bestID
		}
		node := int32(0)
	walk:
		for j := i; j < len(text); {
			n, size := t.normRune(text, j)
			for k := 0; k < len(n); k++ {
				var ok bool
				if node, ok = tr.step(node, n[k]); !ok {
					break walk
				}
			}
			j += size
			if id := tr.term[node]; id >= 0 && j-i > best {
				best, bestID = j-i, id
			}
		}
	}
	return best, bestID
}
