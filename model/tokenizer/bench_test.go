package tokenizer

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkEncode encodes the whole Shakespeare eval text (55 KB) with the
// tokenizer.model of the trained Shakespeare model.
func BenchmarkEncode(b *testing.B) {
	tok, err := Load(shakespeareDir)
	if err != nil {
		b.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(shakespeareDir, "eval.txt"))
	if err != nil {
		b.Fatal(err)
	}
	s := string(text)
	b.SetBytes(int64(len(s)))
	var n int
	for b.Loop() {
		n = len(tok.Encode(s))
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkEncodeGemmaJSON encodes the same text with the real Gemma
// tokenizer.json (256000 pieces).
func BenchmarkEncodeGemmaJSON(b *testing.B) {
	tok := loadGemmaJSON(b)
	text, err := os.ReadFile(filepath.Join(shakespeareDir, "eval.txt"))
	if err != nil {
		b.Fatal(err)
	}
	s := string(text)
	b.SetBytes(int64(len(s)))
	var n int
	for b.Loop() {
		n = len(tok.Encode(s))
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkLoadGemmaJSON parses the 17 MB Gemma tokenizer.json.
func BenchmarkLoadGemmaJSON(b *testing.B) {
	data, err := os.ReadFile(gemmaJSON)
	if err != nil {
		b.Skip("needs `make fixtures-tokenizer`")
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := FromHuggingFaceJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}
