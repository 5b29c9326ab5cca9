package runtime

import (
	"errors"
	"slices"
	"testing"
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
			got, err := FormatChat(c.msgs)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("FormatChat:\n got %q\nwant %q", got, c.want)
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
	// are exactly BOS + the encoded text of FormatChat.
	text, err := FormatChat(msgs)
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
