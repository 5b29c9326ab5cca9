package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// hfFile is the part of a Hugging Face tokenizer.json this package reads.
type hfFile struct {
	AddedTokens  []hfAddedToken `json:"added_tokens"`
	Normalizer   json.RawMessage
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Model        *struct {
		Type                    string
		Vocab                   map[string]int
		Merges                  json.RawMessage
		UnkToken                *string  `json:"unk_token"`
		ByteFallback            bool     `json:"byte_fallback"`
		FuseUnk                 bool     `json:"fuse_unk"`
		IgnoreMerges            bool     `json:"ignore_merges"`
		Dropout                 *float64 `json:"dropout"`
		ContinuingSubwordPrefix *string  `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string  `json:"end_of_word_suffix"`
	}
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
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
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
	escape, err := hfCheckNormalizer(f.Normalizer)
	if err != nil {
		return nil, err
	}
	if !isJSONNull(f.PreTokenizer) {
		return nil, fmt.Errorf("%w: pre_tokenizer %s (only none is supported)", ErrUnsupported, truncate(f.PreTokenizer))
	}

	// Piece table: the vocabulary plus added tokens, which may extend it.
	n := len(m.Vocab)
	for _, a := range f.AddedTokens {
		n = max(n, a.ID+1)
	}
	if n > len(m.Vocab)+len(f.AddedTokens) {
		return nil, errors.New("token ids are not contiguous from 0")
	}
	pieces := make([]string, n)
	types := make([]pieceType, n)
	for s, id := range m.Vocab {
		if id < 0 || id >= n {
			return nil, fmt.Errorf("vocab id %d of %q out of range [0, %d)", id, s, n)
		}
		if pieces[id] != "" {
			return nil, fmt.Errorf("vocab id %d used by %q and %q", id, pieces[id], s)
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

	unk := -1
	if m.UnkToken != nil {
		id, ok := m.Vocab[*m.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocab", *m.UnkToken)
		}
		unk = id
		types[id] = typeUnknown
	} else {
		return nil, errors.New("no unk_token")
	}
	if m.ByteFallback {
		for id, p := range pieces {
			if _, ok := parseBytePiece(p); ok && id != unk {
				types[id] = typeByte
			}
		}
	}

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
	rules, err := hfMerges(m.Merges, t.ids)
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
func hfMerges(data json.RawMessage, ids map[string]int32) (*rankRules, error) {
	if isJSONNull(data) {
		return &rankRules{merges: map[uint64]rankMerge{}}, nil
	}
	var pairs [][]string
	var strs []string
	if err := json.Unmarshal(data, &strs); err != nil {
		if err2 := json.Unmarshal(data, &pairs); err2 != nil {
			return nil, fmt.Errorf("merges: %w", err)
		}
	}
	count := max(len(strs), len(pairs))
	r := &rankRules{merges: make(map[uint64]rankMerge, count)}
	var buf []byte
	for i := range count {
		var a, b string
		if strs != nil {
			var ok bool
			a, b, ok = strings.Cut(strs[i], " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("merge %d (%q) is not two tokens separated by a space", i, strs[i])
			}
		} else {
			if len(pairs[i]) != 2 {
				return nil, fmt.Errorf("merge %d has %d parts, want 2", i, len(pairs[i]))
			}
			a, b = pairs[i][0], pairs[i][1]
		}
		ia, ok := ids[a]
		if !ok {
			return nil, fmt.Errorf("merge %d: %q is not in the vocab", i, a)
		}
		ib, ok := ids[b]
		if !ok {
			return nil, fmt.Errorf("merge %d: %q is not in the vocab", i, b)
		}
		buf = append(append(buf[:0], a...), b...)
		im, ok := ids[string(buf)] // no allocation: the compiler looks up []byte keys in place
		if !ok {
			return nil, fmt.Errorf("merge %d: %q is not in the vocab", i, buf)
		}
		r.merges[pairKey(ia, ib)] = rankMerge{rank: int32(i), id: im}
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
