package tokenizer

import (
	"strings"
	"testing"
)

// TestMaxTokenBytesBoundsTokenCount: the server refuses a prompt of more than
// context × MaxTokenBytes bytes without tokenizing it, which is only right if
// no text has fewer than len/MaxTokenBytes tokens.
func TestMaxTokenBytesBoundsTokenCount(t *testing.T) {
	tk := loadGemmaJSON(t)
	n := tk.MaxTokenBytes()
	if n < 16 || n > 200 {
		t.Fatalf("MaxTokenBytes %d is implausible for Gemma", n)
	}
	for _, text := range []string{
		strings.Repeat(" ", 1000), strings.Repeat("　", 400), strings.Repeat("—", 500),
		strings.Repeat("<start_of_turn>", 50), "Hello, world! " + strings.Repeat("ab", 300),
	} {
		if got := len(tk.Encode(text)); got*n < len(text) {
			t.Errorf("%d bytes gave %d tokens, fewer than %d bytes / %d", len(text), got, len(text), n)
		}
	}
}
