package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// checkTokenizer exercises a tokenizer that loaded from fuzzed bytes: ids
// must be in range and decoding must give valid UTF-8.
func checkTokenizer(t *testing.T, tok *Tokenizer) {
	for _, text := range []string{"", "a", "hello world  ", "<start_of_turn>user\n東京 🙂\xff", "\u2581x"} {
		ids := tok.Encode(text)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q) gave id %d, vocab size %d", text, id, tok.VocabSize())
			}
		}
		if s := tok.Decode(ids); !utf8.ValidString(s) {
			t.Fatalf("Decode gave invalid UTF-8 %q", s)
		}
	}
	kind, src := tok.Source()
	if _, err := FromBytes(kind, src); err != nil {
		t.Fatalf("FromBytes(Source()): %v", err)
	}
}

// FuzzSentencePieceModel: the protobuf parser returns an error or a working
// tokenizer, never panics.
func FuzzSentencePieceModel(f *testing.F) {
	tiny := readTinyModel(f)
	f.Add(tiny)
	for _, n := range []int{0, 1, 2, 10, 100, len(tiny) / 2, len(tiny) - 20, len(tiny) - 1} {
		f.Add(tiny[:n])
	}
	f.Add(miniModel())
	f.Add(miniModelNoNormalizer())
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := FromSentencePiece(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tokenizer: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		checkTokenizer(t, tok)
	})
}

// FuzzTokenizerJSON: the tokenizer.json loader returns an error or a
// working tokenizer, never panics.
func FuzzTokenizerJSON(f *testing.F) {
	f.Add(hfDoc([]string{"a", "b", "ab", "▁", "▁a"}, []string{"a b", "▁ a"}, nil))
	f.Add(hfDoc([]string{"a", "b", "ab"}, [][]string{{"a", "b"}}, nil))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"<unk>":0,"a":1},"unk_token":"<unk>","merges":[]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := FromHuggingFaceJSON(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tokenizer: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		checkTokenizer(t, tok)
	})
}

// FuzzEncodeDecode: with the tiny Gemma model, every valid UTF-8 text
// without a literal "▁" (which decodes to a space) round-trips, and
// streaming decode agrees with Decode.
func FuzzEncodeDecode(f *testing.F) {
	tok := loadTiny(f)
	for _, c := range readCases(f, "../../testdata/gemma2-tiny/tokenizer_cases.json") {
		f.Add(c.Text)
	}
	f.Add("\x00\x7f\u00ff\U0010ffff\uFFFD")
	f.Add("<start_of_turn><end_of_turn><start_of_turn")
	f.Fuzz(func(t *testing.T, text string) {
		if !utf8.ValidString(text) || strings.Contains(text, spaceSymbol) {
			return
		}
		ids := tok.Encode(text)
		if got := tok.Decode(ids); got != text {
			t.Fatalf("Decode(Encode(%q)) = %q (ids %v)", text, got, ids)
		}
		d := tok.NewStreamDecoder()
		var sb strings.Builder
		for _, id := range ids {
			s := d.Add(id)
			if !utf8.ValidString(s) {
				t.Fatalf("stream Add gave invalid UTF-8 %q", s)
			}
			sb.WriteString(s)
		}
		sb.WriteString(d.Flush())
		if sb.String() != text {
			t.Fatalf("streamed %q, want %q", sb.String(), text)
		}
	})
}
