package main

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/cafeq/cafeq/model/tokenizer"
	"github.com/cafeq/cafeq/runtime"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitCount waits until s occurs n times in b.
func waitCount(t *testing.T, b *lockedBuffer, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(b.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d× %q in:\n%s", n, s, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestChatTerminal drives chat through a pseudo-terminal as a user would:
// arrow keys and backspace edit the line, the up arrow recalls history,
// """ spans lines, /reset asks first, /bye quits.
func TestChatTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	var screen, stderr lockedBuffer
	go io.Copy(&screen, ptmx)
	done := make(chan error, 1)
	go func() {
		done <- chat([]string{"-m", shakespeare, "-n", "6", "-temp", "0", "-verbose"}, tty, tty, &stderr)
	}()
	typeKeys := func(keys string) { ptmx.Write([]byte(keys)) }
	const left, up, backspace = "\x1b[D", "\x1b[A", "\x7f"

	waitCount(t, &screen, ">>> ", 1)
	typeKeys("/hepx" + backspace + left + "l\r") // "/hep", cursor before p, insert l: "/help"
	waitCount(t, &stderr, "Commands:", 1)
	waitCount(t, &screen, ">>> ", 2)
	typeKeys(up + "\r") // history: /help again
	waitCount(t, &stderr, "Commands:", 2)
	waitCount(t, &screen, ">>> ", 3)
	typeKeys(`"""` + "\r" + "ROMEO:\r" + `"""` + "\r")
	waitCount(t, &stderr, "eval rate:", 1)
	if c := strings.Count(screen.String(), "... "); c != 2 {
		t.Errorf("%d continuation prompts for a three-line message, want 2", c)
	}
	if !strings.Contains(stderr.String(), "prompt eval count:") {
		t.Errorf("-verbose printed no per-turn timings:\n%s", stderr.String())
	}
	waitCount(t, &screen, ">>> ", 4)
	typeKeys("/reset\r")
	waitCount(t, &screen, "Forget the conversation? [y/N] ", 1)
	typeKeys("n\r")
	waitCount(t, &screen, ">>> ", 5)
	if strings.Contains(stderr.String(), "forgotten") {
		t.Fatal("/reset answered n forgot the conversation")
	}
	typeKeys("/reset\r")
	waitCount(t, &screen, "Forget the conversation? [y/N] ", 2)
	typeKeys("y\r")
	waitCount(t, &stderr, "[conversation forgotten]", 1)
	waitCount(t, &screen, ">>> ", 6)
	typeKeys("/bye\r")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("/bye did not end the chat")
	}
	if strings.Contains(screen.String(), "^[[") {
		t.Errorf("escape sequences echoed raw:\n%q", screen.String())
	}
}

// TestChatDropsOldestTurns: a conversation that outgrows the context loses
// its oldest turns, not its system text, and goes on.
func TestChatDropsOldestTurns(t *testing.T) {
	var out, stderr bytes.Buffer
	input := strings.Repeat("Speak, good sir, of the king and his court.\n", 6) + "/bye\n"
	err := chat([]string{"-m", shakespeare, "-n", "12", "-temp", "0", "-ctx", "96", "-system", "Be brief."},
		strings.NewReader(input), &out, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "[dropped the") || strings.Contains(stderr.String(), "starting over") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	if n := strings.Count(out.String(), "\n"); n != 6 {
		t.Errorf("%d replies to 6 messages:\n%s", n, out.String())
	}
}

func TestFitConversation(t *testing.T) {
	tok, err := tokenizer.Load(shakespeare)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(role, text string) runtime.ChatMessage { return runtime.ChatMessage{Role: role, Content: text} }
	long := strings.Repeat("word ", 30)
	history := []runtime.ChatMessage{msg("system", "Be brief."), msg("user", long), msg("assistant", long),
		msg("user", long), msg("assistant", long), msg("user", "last")}
	full, _ := runtime.ChatPrompt(tok, history)
	kept, ids, dropped, err := fitConversation(tok, append([]runtime.ChatMessage(nil), history...), len(full)-1)
	if err != nil || dropped != 2 || len(kept) != 4 || kept[0].Role != "system" || kept[3].Content != "last" || len(ids) >= len(full)-1 {
		t.Errorf("dropped %d, kept %d messages (%v), %d ids", dropped, len(kept), err, len(ids))
	}
	kept, ids, _, _ = fitConversation(tok, []runtime.ChatMessage{msg("system", "x"), msg("user", long)}, 8)
	if ids != nil || len(kept) != 1 {
		t.Errorf("a message longer than the context: ids %v, kept %v", ids, kept)
	}
}
