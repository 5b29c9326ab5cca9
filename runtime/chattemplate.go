package runtime

import (
	"errors"
	"fmt"
	"strings"
)

// Gemma's turn markers. Gemma checkpoints have them as single vocabulary
// pieces; a tokenizer.json may list them without marking them special, so
// ChatPrompt inserts their ids directly instead of hoping the text encoder
// finds them.
const (
	StartOfTurn = "<start_of_turn>"
	EndOfTurn   = "<end_of_turn>"
)

// ChatMessage is one turn of a conversation. Role is "system", "user" or
// "assistant".
type ChatMessage struct {
	Role    string
	Content string
}

// ChatTokenizer is the part of the tokenizer the chat template needs.
// Encode must not add BOS; PieceID looks a piece up by its exact text.
type ChatTokenizer interface {
	Encode(text string) []int
	PieceID(piece string) (int, bool)
	BOS() int
	EOS() int
}

// ErrBadChat is wrapped by every error ChatPrompt returns for invalid input.
var ErrBadChat = errors.New("invalid chat")

// chatSegment is a piece of the rendered prompt: literal text to encode, or a
// turn marker to insert by id.
type chatSegment struct {
	text    string
	special bool
}

// renderChat lays the conversation out in Gemma's format:
//
//	<bos><start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n{text}<end_of_turn>\n...<start_of_turn>model\n
//
// Gemma has no system role, so system messages are folded into the next user
// turn as "{system}\n\n{user}"; a system message with no user turn after it
// becomes a user turn of its own. Contents are trimmed of surrounding
// whitespace, as Gemma's reference template does. The prompt always ends with
// an open model turn for the reply.
func renderChat(msgs []ChatMessage) ([]chatSegment, error) {
	if len(msgs) == 0 {
		return nil, fmt.Errorf("runtime: chat: no messages: %w", ErrBadChat)
	}
	var segs []chatSegment
	turn := func(role, text string) {
		segs = append(segs,
			chatSegment{text: StartOfTurn, special: true},
			chatSegment{text: role + "\n" + text},
			chatSegment{text: EndOfTurn, special: true},
			chatSegment{text: "\n"})
	}
	var system []string
	flushSystem := func() {
		if len(system) > 0 {
			turn("user", strings.Join(system, "\n\n"))
			system = nil
		}
	}
	for i, m := range msgs {
		content := strings.TrimSpace(m.Content)
		switch m.Role {
		case "system":
			system = append(system, content)
		case "user":
			if len(system) > 0 {
				content = strings.Join(system, "\n\n") + "\n\n" + content
				system = nil
			}
			turn("user", content)
		case "assistant":
			flushSystem()
			turn("model", content)
		default:
			return nil, fmt.Errorf("runtime: chat: message %d: unknown role %q (want system, user or assistant): %w", i, m.Role, ErrBadChat)
		}
	}
	flushSystem()
	segs = append(segs,
		chatSegment{text: StartOfTurn, special: true},
		chatSegment{text: "model\n"})
	return segs, nil
}

// ChatPrompt renders msgs with Gemma's chat template and returns the prompt's
// token ids, starting with BOS (when the tokenizer has one). Turn markers are inserted by id when the
// vocabulary has them as pieces and encoded as literal text otherwise. Text
// between markers is encoded piece by piece, which is also how Hugging Face
// tokenizes around special tokens.
func ChatPrompt(tok ChatTokenizer, msgs []ChatMessage) ([]int, error) {
	segs, err := renderChat(msgs)
	if err != nil {
		return nil, err
	}
	var ids []int
	if bos := tok.BOS(); bos >= 0 { // a tokenizer without BOS reports -1
		ids = append(ids, bos)
	}
	for _, s := range segs {
		if s.special {
			if id, ok := tok.PieceID(s.text); ok {
				ids = append(ids, id)
				continue
			}
		}
		ids = append(ids, tok.Encode(s.text)...)
	}
	return ids, nil
}

// ChatStopTokens returns the ids that end a model turn: EOS and, when the
// vocabulary has it, <end_of_turn>.
func ChatStopTokens(tok ChatTokenizer) []int {
	var stops []int
	if eos := tok.EOS(); eos >= 0 {
		stops = append(stops, eos)
	}
	if id, ok := tok.PieceID(EndOfTurn); ok && id != tok.EOS() {
		stops = append(stops, id)
	}
	return stops
}
