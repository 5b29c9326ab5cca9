package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"
)

// hfFile is the part of a Hugging Face tokenizer.json this package reads.
type hfFile struct {
	AddedTokens  []hfAddedToken
	Normalizer   json.RawMessage
	PreTokenizer json.RawMessage
	Model        *hfModel
}

type hfModel struct {
	Type                    string
	UnkToken                *string
	ByteFallback            bool
	FuseUnk                 bool
	IgnoreMerges            bool
	Dropout                 *float64
	ContinuingSubwordPrefix *string
	EndOfWordSuffix         *string
	Vocab, Merges           json.RawMessage // scanned by hand once the rest is checked
}

type hfAddedToken struct {
	ID         int
	Content    string
	SingleWord bool `json:"single_word"`
	Lstrip     bool
	Rstrip     bool
	Normalized bool
	Special    bool
}

// parseHFFile reads the top level of tokenizer.json. Unknown keys are
// skipped; as in encoding/json, a repeated key's last value wins.
func parseHFFile(data []byte) (*hfFile, error) {
	var f hfFile
	s := &jsonScanner{data: data}
	err := s.object(func(key string) error {
		var err error
		switch key {
		case "added_tokens":
			err = s.decode(&f.AddedTokens)
		case "normalizer":
			f.Normalizer, err = s.raw()
		case "pre_tokenizer":
			f.PreTokenizer, err = s.raw()
		case "model":
			f.Model = &hfModel{}
			err = parseHFModel(s, f.Model)
		default:
			err = s.skip(1)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	return &f, nil
}

func parseHFModel(s *jsonScanner, m *hfModel) error {
	return s.object(func(key string) error {
		var err error
		switch key {
		case "type":
			err = s.decode(&m.Type)
		case "unk_token":
			err = s.decode(&m.UnkToken)
		case "byte_fallback":
			err = s.decode(&m.ByteFallback)
		case "fuse_unk":
			err = s.decode(&m.FuseUnk)
		case "ignore_merges":
			err = s.decode(&m.IgnoreMerges)
		case "dropout":
			err = s.decode(&m.Dropout)
		case "continuing_subword_prefix":
			err = s.decode(&m.ContinuingSubwordPrefix)
		case "end_of_word_suffix":
			err = s.decode(&m.EndOfWordSuffix)
		case "vocab":
			m.Vocab, err = s.raw()
		case "merges":
			m.Merges, err = s.raw()
		default:
			err = s.skip(1)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
}

// parseHFVocab reads model.vocab, an object piece -> id.
func parseHFVocab(data json.RawMessage) ([]string, []int, error) {
	var keys []string
	var ids []int
	s := &jsonScanner{data: data}
	err := s.object(func(key string) error {
		id, err := s.int()
		if err != nil {
			return fmt.Errorf("vocab %q: %w", key, err)
		}
		keys = append(keys, key)
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("vocab: %w", err)
	}
	return keys, ids, nil
}

type hfNormalizer struct {
	Type    string
	Pattern *struct {
		String *string
	}
	Content     string
	Normalizers []json.RawMessage
}

// FromHuggingFaceJSON builds a tokenizer from the bytes of a Hugging Face
// tokenizer.json with a BPE model (Gemma's form). Settings Gemma does not
// use (pre-tokenizers, normalizers other than " " -> "▁", dropout, subword
// affixes) fail with ErrUnsupported.
func FromHuggingFaceJSON(data []byte) (*Tokenizer, error) {
	t, err := fromHuggingFaceJSON(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json: %w", err)
	}
	return t, nil
}

func fromHuggingFaceJSON(data []byte) (*Tokenizer, error) {
	f, err := parseHFFile(data)
	if err != nil {
		return nil, err
	}
	m := f.Model
	if m == nil {
		return nil, errors.New("no model")
	}
	if m.Type != "BPE" {
		return nil, fmt.Errorf("%w: model type %q (only BPE is supported)", ErrUnsupported, m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, fmt.Errorf("%w: BPE dropout %g", ErrUnsupported, *m.Dropout)
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" {
		return nil, fmt.Errorf("%w: continuing_subword_prefix", ErrUnsupported)
	}
	if m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return nil, fmt.Errorf("%w: end_of_word_suffix", ErrUnsupported)
	}
	if m.UnkToken == nil {
		return nil, errors.New("no unk_token")
	}
	escape, err := hfCheckNormalizer(f.Normalizer)
	if err != nil {
		return nil, err
	}
	if !isJSONNull(f.PreTokenizer) {
		return nil, fmt.Errorf("%w: pre_tokenizer %s (only none is supported)", ErrUnsupported, truncate(f.PreTokenizer))
	}
	if m.Vocab == nil {
		return nil, errors.New("no model.vocab")
	}
	vocab, vocabIDs, err := parseHFVocab(m.Vocab)
	if err != nil {
		return nil, err
	}

	// Piece table: the vocabulary plus added tokens, which may extend it.
	n := len(vocab)
	for _, a := range f.AddedTokens {
		n = max(n, a.ID+1)
	}
	if n > len(vocab)+len(f.AddedTokens) {
		return nil, errors.New("token ids are not contiguous from 0")
	}
	pieces := make([]string, n)
	types := make([]pieceType, n)
	for i, s := range vocab {
		id := vocabIDs[i]
		if id < 0 || id >= n {
			return nil, fmt.Errorf("vocab id %d of %q out of range [0, %d)", id, s, n)
		}
		if pieces[id] != "" {
			return nil, fmt.Errorf("vocab id %d used by %q and %q", id, pieces[id], s)
		}
		if s == "" {
			return nil, fmt.Errorf("vocab id %d is empty", id)
		}
		pieces[id] = s
	}
	atomic := make([]int32, 0, len(f.AddedTokens))
	raw := make([]bool, 0, len(f.AddedTokens))
	seen := make(map[int]bool, len(f.AddedTokens))
	for _, a := range f.AddedTokens {
		if a.ID < 0 || a.ID >= n {
			return nil, fmt.Errorf("added token %q has id %d", a.Content, a.ID)
		}
		if a.Content == "" {
			return nil, fmt.Errorf("added token %d is empty", a.ID)
		}
		if a.SingleWord || a.Lstrip || a.Rstrip {
			return nil, fmt.Errorf("%w: added token %q with single_word/lstrip/rstrip", ErrUnsupported, a.Content)
		}
		if seen[a.ID] {
			return nil, fmt.Errorf("added token id %d defined twice", a.ID)
		}
		seen[a.ID] = true
		if pieces[a.ID] != "" && pieces[a.ID] != a.Content {
			return nil, fmt.Errorf("added token %q has id %d, which the vocab gives to %q", a.Content, a.ID, pieces[a.ID])
		}
		pieces[a.ID] = a.Content
		types[a.ID] = typeUserDefined
		if a.Special {
			types[a.ID] = typeControl
		}
		atomic = append(atomic, int32(a.ID))
		raw = append(raw, !a.Normalized)
	}
	for id, p := range pieces {
		if p == "" {
			return nil, fmt.Errorf("token id %d has no piece (ids are not contiguous)", id)
		}
	}
	if m.ByteFallback {
		for id, p := range pieces {
			if _, ok := parseBytePiece(p); ok {
				types[id] = typeByte
			}
		}
	}
	unk := slices.Index(pieces, *m.UnkToken)
	if unk < 0 {
		return nil, fmt.Errorf("unk_token %q is not in the vocab", *m.UnkToken)
	}
	types[unk] = typeUnknown

	t, err := newTokenizer(KindHuggingFace, data, pieces, types)
	if err != nil {
		return nil, err
	}
	t.byteFallback = m.ByteFallback
	t.bytesAllOrNothing = true
	t.fuseUnk = m.FuseUnk
	t.ignoreMerges = m.IgnoreMerges
	t.escapeSpaces = escape
	t.buildMatchers(atomic, raw)
	rules, err := hfMerges(m.Merges, t.ids, len(pieces))
	if err != nil {
		return nil, err
	}
	t.rules = rules
	// tokenizer.json does not name BOS and EOS; Gemma's are <bos> and <eos>.
	for _, s := range []string{"<bos>", "<s>"} {
		if id, ok := t.ids[s]; ok {
			t.bos = id
			break
		}
	}
	for _, s := range []string{"<eos>", "</s>"} {
		if id, ok := t.ids[s]; ok {
			t.eos = id
			break
		}
	}
	return t, nil
}

// hfMerges reads model.merges, either ["a b", ...] or [["a", "b"], ...].
// A pair listed twice keeps its last rank, as in the tokenizers library.
// Like the tokenizers library it rejects a merge whose parts or result are
// not in the vocabulary. Only the result is looked up in the full
// vocabulary: a multi-character part that is not a piece can never be a
// symbol, so the merge could never apply; single characters are checked
// against the (small, cache-friendly) set of one-character pieces.
func hfMerges(data json.RawMessage, ids map[string]int32, nPieces int) (*rankRules, error) {
	type merge struct{ id, leftLen int32 } // rank is the index
	var merges []merge
	r := &rankRules{ids: ids, first: make([]int32, nPieces+1)}
	if isJSONNull(data) {
		return r, nil
	}
	chars := make(map[string]bool)
	for p := range ids {
		if utf8.RuneCountInString(p) == 1 {
			chars[p] = true
		}
	}
	known := func(p []byte) bool {
		if len(p) == 0 {
			return false
		}
		if _, size := utf8.DecodeRune(p); size == len(p) {
			return chars[string(p)]
		}
		return true
	}
	s := &jsonScanner{data: data}
	var buf []byte
	rank := 0
	err := s.array(func() error {
		var a, b []byte
		switch s.peek() {
		case '"':
			start := s.pos
			span, escaped, err := s.strSpan()
			if err != nil {
				return err
			}
			if escaped {
				var str string
				if err := json.Unmarshal(s.data[start:s.pos], &str); err != nil {
					return fmt.Errorf("merge %d: %w", rank, err)
				}
				span = []byte(str)
			}
			i := bytes.IndexByte(span, ' ')
			if i < 0 || bytes.IndexByte(span[i+1:], ' ') >= 0 {
				return fmt.Errorf("merge %d (%q) is not two tokens separated by a space", rank, span)
			}
			a, b = span[:i], span[i+1:]
		case '[':
			var parts []string
			if err := s.array(func() error {
				p, err := s.str()
				parts = append(parts, p)
				return err
			}); err != nil {
				return fmt.Errorf("merge %d: %w", rank, err)
			}
			if len(parts) != 2 {
				return fmt.Errorf("merge %d has %d parts, want 2", rank, len(parts))
			}
			a, b = []byte(parts[0]), []byte(parts[1])
		default:
			return fmt.Errorf("merge %d: %w", rank, s.errorf("want a string or a pair"))
		}
		if !known(a) {
			return fmt.Errorf("merge %d: %q is not in the vocab", rank, a)
		}
		if !known(b) {
			return fmt.Errorf("merge %d: %q is not in the vocab", rank, b)
		}
		buf = append(append(buf[:0], a...), b...)
		id, ok := ids[string(buf)] // no allocation: the compiler looks up []byte keys in place
		if !ok {
			return fmt.Errorf("merge %d: %q is not in the vocab", rank, buf)
		}
		if rank > math.MaxInt32 {
			return errors.New("too many merges")
		}
		merges = append(merges, merge{id: id, leftLen: int32(len(a))})
		rank++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("merges: %w", err)
	}
	// Group by merged piece (a counting sort that keeps listing order).
	for _, m := range merges {
		r.first[m.id+1]++
	}
	for i := 1; i < len(r.first); i++ {
		r.first[i] += r.first[i-1]
	}
	next := slices.Clone(r.first[:nPieces])
	r.splits = make([]rankSplit, len(merges))
	for rank, m := range merges {
		r.splits[next[m.id]] = rankSplit{leftLen: m.leftLen, rank: int32(rank)}
		next[m.id]++
	}
	return r, nil
}

// hfCheckNormalizer accepts no normalizer or Gemma's Replace " " -> "▁"
// (alone or as the only member of a Sequence). It reports whether spaces
// are escaped.
func hfCheckNormalizer(data json.RawMessage) (bool, error) {
	if isJSONNull(data) {
		return false, nil
	}
	var n hfNormalizer
	if err := json.Unmarshal(data, &n); err != nil {
		return false, fmt.Errorf("normalizer: %w", err)
	}
	if n.Type == "Sequence" && len(n.Normalizers) == 1 {
		return hfCheckNormalizer(n.Normalizers[0])
	}
	if n.Type == "Sequence" && len(n.Normalizers) == 0 {
		return false, nil
	}
	if n.Type == "Replace" && n.Pattern != nil && n.Pattern.String != nil && *n.Pattern.String == " " && n.Content == spaceSymbol {
		return true, nil
	}
	return false, fmt.Errorf("%w: normalizer %s (only Replace \" \" -> \"▁\" is supported)", ErrUnsupported, truncate(data))
}

func isJSONNull(data json.RawMessage) bool {
	d := bytes.TrimSpace(data)
	return len(d) == 0 || string(d) == "null"
}

func truncate(data json.RawMessage) string {
	const limit = 120
	if len(data) > limit {
		return string(data[:limit]) + "..."
	}
	return string(data)
}
