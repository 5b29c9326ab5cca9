package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cafeq/cafeq/model/tokenizer"
)

// byteTok encodes text one id per byte (id = byte + 10) and knows the turn
// markers only when pieces is true, so both ChatPrompt paths are exercised.
type byteTok struct{ pieces bool }

const (
	tBOS = 2
	tEOS = 1
	tSOT = 4
	tEOT = 5
)

func (t byteTok) Encode(s string) []int {
	ids := make([]int, len(s))
	for i := 0; i < len(s); i++ {
		ids[i] = int(s[i]) + 10
	}
	return ids
}

func (t byteTok) PieceID(p string) (int, bool) {
	if !t.pieces {
		return 0, false
	}
	switch p {
	case StartOfTurn:
		return tSOT, true
	case EndOfTurn:
		return tEOT, true
	}
	return 0, false
}

func (byteTok) BOS() int { return tBOS }
func (byteTok) EOS() int { return tEOS }

func TestFormatChat(t *testing.T) {
	cases := []struct {
		name string
		msgs []ChatMessage
		want string
	}{
		{
			name: "single user",
			msgs: []ChatMessage{{"user", "Hi"}},
			want: "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
		},
		{
			name: "system folded into first user turn",
			msgs: []ChatMessage{{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "  Bye \n"}},
			want: "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n" +
				"<start_of_turn>model\nHello.<end_of_turn>\n" +
				"<start_of_turn>user\nBye<end_of_turn>\n" +
				"<start_of_turn>model\n",
		},
		{
			name: "two system messages join",
			msgs: []ChatMessage{{"system", "A"}, {"system", "B"}, {"user", "C"}},
			want: "<start_of_turn>user\nA\n\nB\n\nC<end_of_turn>\n<start_of_turn>model\n",
		},
		{
			name: "system alone becomes a user turn",
			msgs: []ChatMessage{{"system", "Only rules"}},
			want: "<start_of_turn>user\nOnly rules<end_of_turn>\n<start_of_turn>model\n",
		},
		{
			name: "system before assistant is not lost",
			msgs: []ChatMessage{{"system", "S"}, {"assistant", "A"}, {"user", "U"}},
			want: "<start_of_turn>user\nS<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n" +
				"<start_of_turn>user\nU<end_of_turn>\n<start_of_turn>model\n",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := formatChat(c.msgs)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("formatChat:\n got %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestChatPromptIDs(t *testing.T) {
	msgs := []ChatMessage{{"user", "Hi"}, {"assistant", "Yo"}, {"user", "Ok"}}
	enc := byteTok{}.Encode
	var want []int
	want = append(want, tBOS, tSOT)
	want = append(want, enc("user\nHi")...)
	want = append(want, tEOT)
	want = append(want, enc("\n")...)
	want = append(want, tSOT)
	want = append(want, enc("model\nYo")...)
	want = append(want, tEOT)
	want = append(want, enc("\n")...)
	want = append(want, tSOT)
	want = append(want, enc("user\nOk")...)
	want = append(want, tEOT)
	want = append(want, enc("\n")...)
	want = append(want, tSOT)
	want = append(want, enc("model\n")...)

	got, err := ChatPrompt(byteTok{pieces: true}, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ChatPrompt with marker pieces:\n got %v\nwant %v", got, want)
	}

	// Without the pieces the markers are encoded as literal text, so the ids
	// are exactly BOS + the encoded text of formatChat.
	text, err := formatChat(msgs)
	if err != nil {
		t.Fatal(err)
	}
	got, err = ChatPrompt(byteTok{pieces: false}, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]int{tBOS}, enc(text)...); !slices.Equal(got, want) {
		t.Errorf("ChatPrompt without marker pieces:\n got %v\nwant %v", got, want)
	}
}

func TestChatPromptErrors(t *testing.T) {
	cases := [][]ChatMessage{
		nil,
		{},
		{{"tool", "x"}},
		{{"user", "a"}, {"User", "b"}},
		{{"", "x"}},
		{{"model", "x"}}, // Gemma's internal name is not an API role
	}
	for _, msgs := range cases {
		_, err := ChatPrompt(byteTok{pieces: true}, msgs)
		if !errors.Is(err, ErrBadChat) {
			t.Errorf("ChatPrompt(%v) error = %v, want ErrBadChat", msgs, err)
		}
	}
}

func TestChatStopTokens(t *testing.T) {
	if got := ChatStopTokens(byteTok{pieces: true}); !slices.Equal(got, []int{tEOS, tEOT}) {
		t.Errorf("with pieces: got %v", got)
	}
	if got := ChatStopTokens(byteTok{pieces: false}); !slices.Equal(got, []int{tEOS}) {
		t.Errorf("without pieces: got %v", got)
	}
}

// TestChatPromptRealTokenizer checks the template against the Shakespeare
// model's SentencePiece tokenizer, which has the turn markers as pieces.
func TestChatPromptRealTokenizer(t *testing.T) {
	dir := filepath.Join("..", "testdata", "shakespeare-gemma2")
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.model")); err != nil {
		if os.Getenv("CAFEQ_REQUIRE_FIXTURES") == "1" {
			t.Fatal(err)
		}
		t.Skip("fixture missing:", err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	sot, ok1 := tok.PieceID(StartOfTurn)
	eot, ok2 := tok.PieceID(EndOfTurn)
	if !ok1 || !ok2 {
		t.Fatal("fixture tokenizer lacks the turn markers")
	}
	msgs := []ChatMessage{{"system", "Speak in verse."}, {"user", "Who art thou?"}, {"assistant", "A king."}, {"user", "Of what?"}}
	ids, err := ChatPrompt(tok, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if ids[0] != tok.BOS() {
		t.Errorf("first id %d, want BOS %d", ids[0], tok.BOS())
	}
	count := func(id int) (n int) {
		for _, x := range ids {
			if x == id {
				n++
			}
		}
		return n
	}
	if count(sot) != 4 || count(eot) != 3 {
		t.Errorf("%d <start_of_turn> and %d <end_of_turn>, want 4 and 3: %v", count(sot), count(eot), ids)
	}
	// Encoding the whole text finds the markers too (they are user-defined
	// symbols of this tokenizer), so both paths must agree here.
	text, err := formatChat(msgs)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]int{tok.BOS()}, tok.Encode(text)...); !slices.Equal(ids, want) {
		t.Errorf("ChatPrompt ids differ from encoding the rendered text:\n got %v\nwant %v", ids, want)
	}
	if got := ChatStopTokens(tok); !slices.Equal(got, []int{tok.EOS(), eot}) {
		t.Errorf("ChatStopTokens = %v", got)
	}
}

// formatChat returns the prompt text ChatPrompt encodes, without <bos>.
func formatChat(msgs []ChatMessage) (string, error) {
	segs, err := renderChat(msgs)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(s.text)
	}
	return b.String(), nil
}
