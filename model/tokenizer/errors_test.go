package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Protobuf builders for hand-made model files.

func pbVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func pbInt(b []byte, field int, v int64) []byte {
	return pbVarint(pbVarint(b, uint64(field)<<3|wireVarint), uint64(v))
}

func pbBytes(b []byte, field int, data []byte) []byte {
	b = pbVarint(b, uint64(field)<<3|wireBytes)
	return append(pbVarint(b, uint64(len(data))), data...)
}

func pbFloat(b []byte, field int, f float32) []byte {
	b = pbVarint(b, uint64(field)<<3|wireFixed32)
	u := math.Float32bits(f)
	return append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
}

func pbPiece(text string, score float32, typ int) []byte {
	var p []byte
	p = pbBytes(p, 1, []byte(text))
	p = pbFloat(p, 2, score)
	return pbInt(p, 3, int64(typ))
}

func readTinyModel(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(tinyDir, "tokenizer.model"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// miniModel is a valid Gemma-style BPE model with pieces a, b, c, ab, bc,
// abc and no byte pieces; extra is appended (proto2 merges a repeated
// message field into the earlier one, so appended specs override).
func miniModel(extra ...[]byte) []byte {
	var ns []byte
	ns = pbBytes(ns, 1, []byte("identity"))
	ns = pbInt(ns, 3, 0)
	ns = pbInt(ns, 4, 0)
	m := pbBytes(miniModelNoNormalizer(), 3, ns)
	for _, e := range extra {
		m = append(m, e...)
	}
	return m
}

func miniModelNoNormalizer() []byte {
	var m []byte
	for _, p := range []struct {
		text  string
		score float32
		typ   int
	}{
		{"<pad>", 0, spControl}, {"<eos>", 0, spControl}, {"<bos>", 0, spControl}, {"<unk>", 0, spUnknown},
		{"a", -1, spNormal}, {"b", -2, spNormal}, {"c", -3, spNormal},
		{"ab", -5, spNormal}, {"bc", -4, spNormal}, {"abc", -6, spNormal}, {"▁", -7, spNormal},
	} {
		m = pbBytes(m, 1, pbPiece(p.text, p.score, p.typ))
	}
	var ts []byte
	ts = pbInt(ts, 3, spModelBPE)
	ts = pbInt(ts, 40, 3)
	ts = pbInt(ts, 41, 2)
	ts = pbInt(ts, 42, 1)
	ts = pbInt(ts, 43, 0)
	return pbBytes(m, 2, ts)
}

func TestMiniModelScores(t *testing.T) {
	tok, err := FromSentencePiece(miniModel())
	if err != nil {
		t.Fatal(err)
	}
	// "bc" (score -4) beats "ab" (-5), then "abc" is formed from a + bc.
	// '€' is not in the vocabulary and there are no byte pieces: <unk>.
	for text, want := range map[string][]string{
		"abc":  {"abc"},
		"ab":   {"ab"},
		"abab": {"ab", "ab"},
		"a€":   {"a", "<unk>"},
		"c a":  {"c", "▁", "a"},
	} {
		var got []string
		for _, id := range tok.Encode(text) {
			got = append(got, tok.Piece(id))
		}
		if !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %q, want %q", text, got, want)
		}
	}
}

func TestSentencePieceErrors(t *testing.T) {
	tiny := readTinyModel(t)
	trainer := func(field int, v int64) []byte { return pbBytes(nil, 2, pbInt(nil, field, v)) }
	normalizer := func(f []byte) []byte { return pbBytes(nil, 3, f) }
	tests := []struct {
		name        string
		data        []byte
		unsupported bool
		msg         string
	}{
		{"empty", nil, false, "no trainer_spec"},
		{"unigram", append(slices.Clip(tiny), trainer(3, 1)...), true, "UNIGRAM"},
		{"word", append(slices.Clip(tiny), trainer(3, 3)...), true, "WORD"},
		{"model type 9", append(slices.Clip(tiny), trainer(3, 9)...), false, "unknown model type"},
		{"dummy prefix", append(slices.Clip(tiny), normalizer(pbInt(nil, 3, 1))...), true, "add_dummy_prefix"},
		{"extra whitespace", append(slices.Clip(tiny), normalizer(pbInt(nil, 4, 1))...), true, "remove_extra_whitespaces"},
		{"nfkc", append(slices.Clip(tiny), normalizer(pbBytes(nil, 1, []byte("nmt_nfkc")))...), true, "normalizer"},
		{"charsmap", append(slices.Clip(tiny), normalizer(pbBytes(nil, 2, []byte{1, 2, 3}))...), true, "normalizer"},
		{"no normalizer spec (proto2 defaults)", miniModelNoNormalizer(), true, "add_dummy_prefix"},
		{"byte pieces without byte_fallback", append(slices.Clip(tiny), trainer(35, 0)...), false, "byte_fallback is false"},
		{"duplicate piece", append(slices.Clip(tiny), pbBytes(nil, 1, pbPiece("▁a", 0, spNormal))...), false, "defined twice"},
		{"empty piece", miniModel(pbBytes(nil, 1, pbPiece("", 0, spNormal))), false, "empty"},
		{"bad byte piece", miniModel(trainer(35, 1), pbBytes(nil, 1, pbPiece("<0xZZ>", 0, spByte))), false, "want <0xXX>"},
		{"piece type 7", miniModel(pbBytes(nil, 1, pbPiece("q", 0, 7))), false, "unknown type"},
		{"NaN score", miniModel(pbBytes(nil, 1, pbPiece("q", float32(math.NaN()), spNormal))), false, "NaN"},
		{"unk_id not unknown", miniModel(trainer(40, 4)), false, "unk_id"},
		{"unk_id negative", miniModel(trainer(40, -1)), false, "unk_id"},
		{"second unknown", miniModel(pbBytes(nil, 1, pbPiece("<unk2>", 0, spUnknown))), false, "two unknown"},
		{"invalid UTF-8 piece", miniModel(pbBytes(nil, 1, pbPiece("\xff", 0, spNormal))), false, "UTF-8"},
		{"score as varint", miniModel(pbBytes(nil, 1, pbInt(pbBytes(nil, 1, []byte("q")), 2, 1))), false, "wire type"},
		{"pieces as varint", miniModel(pbInt(nil, 1, 5)), false, "wire type"},
		{"group wire type", miniModel([]byte{0x0b}), false, "wire type 3"},
		{"field 0", miniModel([]byte{0x00, 0x00}), false, "field number 0"},
		{"overlong varint", miniModel([]byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), false, "truncated varint"},
		{"length past end", miniModel([]byte{0x0a, 0x10, 0x01}), false, "exceeds"},
		{"truncated fixed32", miniModel([]byte{0x15, 0x01}), false, "fixed32"},
		{"truncated fixed64", miniModel([]byte{0x11, 0x01}), false, "fixed64"},
		{"truncated key", miniModel([]byte{0x80}), false, "field key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromSentencePiece(tc.data)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "tokenizer: ") || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want the tokenizer prefix and %q", err, tc.msg)
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Errorf("errors.Is(%q, ErrUnsupported) = %v, want %v", err, !tc.unsupported, tc.unsupported)
			}
		})
	}
	// Unknown fields of every wire type are skipped.
	var extra []byte
	extra = pbInt(extra, 100, 7)
	extra = pbBytes(extra, 101, []byte("x"))
	extra = pbFloat(extra, 102, 1)
	extra = append(pbVarint(extra, 103<<3|wireFixed64), 1, 2, 3, 4, 5, 6, 7, 8)
	if _, err := FromSentencePiece(miniModel(extra)); err != nil {
		t.Errorf("unknown fields: %v", err)
	}
}

// TestSentencePieceTruncated checks every strict prefix of the tiny model:
// it ends with normalizer_spec, so each one must fail (truncated field, or
// a missing spec whose proto2 defaults are unsupported) and none may panic.
func TestSentencePieceTruncated(t *testing.T) {
	tiny := readTinyModel(t)
	for n := range len(tiny) {
		if _, err := FromSentencePiece(tiny[:n]); err == nil {
			t.Fatalf("prefix of %d bytes: no error", n)
		}
	}
}

// hfDoc builds a small tokenizer.json: pad/eos/bos/unk, the 256 byte
// pieces, then the given pieces in order.
func hfDoc(pieces []string, merges any, mutate func(doc map[string]any)) []byte {
	vocab := map[string]int{"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
	for b := range 256 {
		vocab[fmt.Sprintf("<0x%02X>", b)] = len(vocab)
	}
	for _, p := range pieces {
		vocab[p] = len(vocab)
	}
	added := []any{}
	for i, s := range []string{"<pad>", "<eos>", "<bos>", "<unk>"} {
		added = append(added, map[string]any{"id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
	}
	doc := map[string]any{
		"version":       "1.0",
		"added_tokens":  added,
		"normalizer":    map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
		"pre_tokenizer": nil,
		"decoder":       map[string]any{"type": "Sequence", "decoders": []any{map[string]any{"type": "ByteFallback"}}},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": "<unk>", "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": true, "byte_fallback": true,
			"vocab": vocab, "merges": merges,
		},
	}
	if mutate != nil {
		mutate(doc)
	}
	data, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return data
}

func hfPieces(t *testing.T, tok *Tokenizer, text string) []string {
	t.Helper()
	var got []string
	for _, id := range tok.Encode(text) {
		got = append(got, tok.Piece(id))
	}
	return got
}

func TestHuggingFaceRanks(t *testing.T) {
	pieces := []string{"a", "b", "c", "ab", "bc", "abc", "aa", "aaaa", "▁", "▁a", "hi", "<t>", "▁hi"}
	for _, tc := range []struct {
		merges any
		text   string
		want   []string
	}{
		// Rank, not vocabulary order, decides: the lowest-ranked pair goes first.
		{[]string{"b c", "a b", "a bc"}, "abc", []string{"abc"}},
		{[]string{"a b", "b c", "a bc"}, "abc", []string{"ab", "c"}},
		{[]string{"a b", "b c", "ab c"}, "abc", []string{"abc"}},
		{[][]string{{"b", "c"}, {"a", "b"}}, "abc", []string{"a", "bc"}},
		// A pair listed twice keeps its last rank.
		{[]string{"a b", "b c", "a b"}, "abc", []string{"a", "bc"}},
		// Only the listed split merges: "ab c" is not listed, so no abc.
		{[]string{"a b", "a bc"}, "abc", []string{"ab", "c"}},
		// Equal ranks: leftmost first.
		{[]string{"a a", "aa aa"}, "aaa", []string{"aa", "a"}},
		{[]string{"a a", "aa aa"}, "aaaaa", []string{"aaaa", "a"}},
		// Space becomes ▁; unknown characters fall back to bytes.
		{[]string{"▁ a"}, "a a€", []string{"a", "▁a", "<0xE2>", "<0x82>", "<0xAC>"}},
	} {
		tok, err := FromHuggingFaceJSON(hfDoc(pieces, tc.merges, nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := hfPieces(t, tok, tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("merges %v: Encode(%q) = %q, want %q", tc.merges, tc.text, got, tc.want)
		}
		if got := tok.Decode(tok.Encode(tc.text)); got != tc.text {
			t.Errorf("round trip of %q: %q", tc.text, got)
		}
	}
}

func TestHuggingFaceAddedTokens(t *testing.T) {
	pieces := []string{"a", "h", "i", "hi", "▁", "<", ">", "t"}
	doc := hfDoc(pieces, []string{"h i"}, func(doc map[string]any) {
		n := len(doc["model"].(map[string]any)["vocab"].(map[string]int))
		doc["added_tokens"] = append(doc["added_tokens"].([]any),
			// Matched in the raw text (a space stays a space).
			map[string]any{"id": n, "content": "<t x>", "normalized": false, "special": false},
			// Matched after normalization: " hi" in the text.
			map[string]any{"id": n + 1, "content": "▁hi", "normalized": true, "special": false},
			map[string]any{"id": n + 2, "content": "<t>", "normalized": false, "special": true},
		)
	})
	tok, err := FromHuggingFaceJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	got := hfPieces(t, tok, "a<t x>a hi<t>hi")
	want := []string{"a", "<t x>", "a", "▁hi", "<t>", "hi"}
	if !slices.Equal(got, want) {
		t.Errorf("Encode = %q, want %q", got, want)
	}
	// The special one decodes to nothing, the others to their text.
	if s := tok.Decode(tok.Encode("a<t x>a hi<t>hi")); s != "a<t x>a hihi" {
		t.Errorf("Decode = %q", s)
	}
}

func TestHuggingFaceFuseUnk(t *testing.T) {
	for _, fuse := range []bool{true, false} {
		doc := hfDoc([]string{"a"}, []string{}, func(doc map[string]any) {
			m := doc["model"].(map[string]any)
			m["byte_fallback"] = false
			m["fuse_unk"] = fuse
		})
		tok, err := FromHuggingFaceJSON(doc)
		if err != nil {
			t.Fatal(err)
		}
		want := []int{3, 3, 259 + 1, 3}
		if fuse {
			want = []int{3, 259 + 1, 3}
		}
		if got := tok.Encode("€€a€"); !slices.Equal(got, want) {
			t.Errorf("fuse_unk=%v: Encode = %v, want %v", fuse, got, want)
		}
	}
}

func TestHuggingFaceErrors(t *testing.T) {
	pieces := []string{"a", "b", "ab"}
	model := func(key string, v any) func(map[string]any) {
		return func(doc map[string]any) { doc["model"].(map[string]any)[key] = v }
	}
	tests := []struct {
		name        string
		data        []byte
		unsupported bool
		msg         string
	}{
		{"empty", nil, false, "unexpected end"},
		{"not an object", []byte("[]"), false, "want '{'"},
		{"trailing data", append(hfDoc(pieces, []string{"a b"}, nil), " x"...), false, "after the top-level"},
		{"no model", []byte(`{"added_tokens": []}`), false, "no model"},
		{"unigram", hfDoc(pieces, []string{}, model("type", "Unigram")), true, "Unigram"},
		{"dropout", hfDoc(pieces, []string{}, model("dropout", 0.1)), true, "dropout"},
		{"suffix", hfDoc(pieces, []string{}, model("end_of_word_suffix", "</w>")), true, "end_of_word_suffix"},
		{"prefix", hfDoc(pieces, []string{}, model("continuing_subword_prefix", "##")), true, "continuing_subword_prefix"},
		{"no unk", hfDoc(pieces, []string{}, model("unk_token", nil)), false, "no unk_token"},
		{"unk not in vocab", hfDoc(pieces, []string{}, model("unk_token", "<nope>")), false, "not in the vocab"},
		{"nfkc", hfDoc(pieces, []string{}, func(doc map[string]any) { doc["normalizer"] = map[string]any{"type": "NFKC"} }), true, "normalizer"},
		{"prepend", hfDoc(pieces, []string{}, func(doc map[string]any) {
			doc["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "Prepend", "prepend": "▁"}, map[string]any{"type": "Replace"}}}
		}), true, "normalizer"},
		{"pre_tokenizer", hfDoc(pieces, []string{}, func(doc map[string]any) { doc["pre_tokenizer"] = map[string]any{"type": "ByteLevel"} }), true, "pre_tokenizer"},
		{"merge part missing", hfDoc(pieces, []string{"a x"}, nil), false, "not in the vocab"},
		{"merge result missing", hfDoc(pieces, []string{"b a"}, nil), false, "not in the vocab"},
		{"merge without space", hfDoc(pieces, []string{"ab"}, nil), false, "separated by a space"},
		{"merge of three", hfDoc(pieces, [][]string{{"a", "b", "c"}}, nil), false, "3 parts"},
		{"merge number", hfDoc(pieces, []any{1}, nil), false, "want a string or a pair"},
		{"vocab id string", hfDoc(pieces, []string{}, model("vocab", map[string]any{"<unk>": "x"})), false, "integer"},
		{"vocab gap", hfDoc(pieces, []string{}, model("vocab", map[string]int{"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "a": 10})), false, "out of range"},
		{"added token clash", hfDoc(pieces, []string{}, func(doc map[string]any) {
			doc["added_tokens"] = []any{map[string]any{"id": 4, "content": "<zz>"}}
		}), false, "which the vocab gives"},
		{"added token lstrip", hfDoc(pieces, []string{}, func(doc map[string]any) {
			doc["added_tokens"] = []any{map[string]any{"id": 3, "content": "<unk>", "lstrip": true}}
		}), true, "lstrip"},
		{"added token huge id", hfDoc(pieces, []string{}, func(doc map[string]any) {
			doc["added_tokens"] = []any{map[string]any{"id": math.MaxInt64, "content": "<zz>"}}
		}), false, "has id"},
		{"bad literal", []byte(`{"x": tru}`), false, "bad literal"},
		{"bad number", []byte(`{"x": 1.}`), false, "bad number"},
		{"unterminated string", []byte(`{"x": "abc`), false, "unterminated"},
		{"deep nesting", []byte(`{"x":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`), false, "nested too deeply"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromHuggingFaceJSON(tc.data)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "tokenizer: ") || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want the tokenizer prefix and %q", err, tc.msg)
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Errorf("errors.Is(%q, ErrUnsupported) = %v, want %v", err, !tc.unsupported, tc.unsupported)
			}
		})
	}
}

// TestHuggingFaceTruncated checks that every strict prefix of a small
// tokenizer.json fails cleanly.
func TestHuggingFaceTruncated(t *testing.T) {
	doc := hfDoc([]string{"a", "b", "ab", "\n", "\"q\""}, []string{"a b"}, nil)
	if _, err := FromHuggingFaceJSON(doc); err != nil {
		t.Fatal(err)
	}
	for n := range len(doc) {
		if _, err := FromHuggingFaceJSON(doc[:n]); err == nil {
			t.Fatalf("prefix of %d bytes: no error", n)
		}
	}
}
