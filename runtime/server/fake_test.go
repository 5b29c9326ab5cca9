package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// fakeBackend is a deterministic stand-in for the runtime. Its tokenizer is
// byte-level (id = byte + fakeByteBase) so multi-byte UTF-8 characters span
// several tokens, as they do with byte fallback. The reply is fakeReply of the
// prompt text, one token per byte, then EOS.
type fakeBackend struct {
	ctxLen    int
	delay     time.Duration // per generated token
	emitStop  bool          // pass the EOS id to onToken, as some runtimes do
	barrier   atomic.Int64  // Generate waits (up to 5 s) until this many run at once
	reply     func(prompt string, opts GenerateOptions) string
	created   atomic.Int64 // sessions made
	active    atomic.Int64 // generations running now
	maxActive atomic.Int64
	started   atomic.Int64 // Generate calls
	cancelled atomic.Int64 // generations ended by their context
	tokenized atomic.Int64 // ChatPrompt, TextPrompt and Tokenize calls

	mu       sync.Mutex
	sessions []*fakeSession
}

const (
	fakeEOS      = 1
	fakeBOS      = 2
	fakeEOT      = 5
	fakeByteBase = 10
)

func newFake() *fakeBackend { return &fakeBackend{ctxLen: 512} }

func encodeBytes(s string) []int {
	ids := make([]int, len(s))
	for i := 0; i < len(s); i++ {
		ids[i] = int(s[i]) + fakeByteBase
	}
	return ids
}

func decodeBytes(ids []int) string {
	var b []byte
	for _, id := range ids {
		if id >= fakeByteBase {
			b = append(b, byte(id-fakeByteBase))
		}
	}
	return string(b)
}

func (f *fakeBackend) ChatPrompt(msgs []Message) ([]int, error) {
	f.tokenized.Add(1)
	var sb strings.Builder
	for _, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant":
		default:
			return nil, fmt.Errorf("fake: unknown role %q", m.Role)
		}
		fmt.Fprintf(&sb, "%s: %s\n", m.Role, m.Content)
	}
	sb.WriteString("assistant:")
	return append([]int{fakeBOS}, encodeBytes(sb.String())...), nil
}

func (f *fakeBackend) TextPrompt(text string) ([]int, error) {
	f.tokenized.Add(1)
	return append([]int{fakeBOS}, encodeBytes(text)...), nil
}

func (f *fakeBackend) StopTokens() []int   { return []int{fakeEOS, fakeEOT} }
func (f *fakeBackend) ContextLength() int  { return f.ctxLen }
func (f *fakeBackend) NewDecoder() Decoder { return &fakeDecoder{} }
func (f *fakeBackend) VocabSize() int      { return fakeByteBase + 256 }

// MaxTokenBytes: the fake tokenizer makes one token per byte.
func (f *fakeBackend) MaxTokenBytes() int { return 1 }

func (f *fakeBackend) TokenBytes(id int) []byte {
	if id < fakeByteBase || id >= fakeByteBase+256 {
		return nil
	}
	return []byte{byte(id - fakeByteBase)}
}

func (f *fakeBackend) Tokenize(text string, bos bool) []int {
	f.tokenized.Add(1)
	if bos {
		return append([]int{fakeBOS}, encodeBytes(text)...)
	}
	return encodeBytes(text)
}

func (f *fakeBackend) Detokenize(ids []int) string { return decodeBytes(ids) }

func (f *fakeBackend) NewSession(maxCtx int) (Session, error) {
	f.created.Add(1)
	s := &fakeSession{f: f, maxCtx: maxCtx}
	f.mu.Lock()
	f.sessions = append(f.sessions, s)
	f.mu.Unlock()
	return s, nil
}

// fakeReply is the default reply: it depends on the end of the prompt and,
// when sampling, on the seed, and contains multi-byte characters.
func fakeReply(prompt string, opts GenerateOptions) string {
	tail := prompt
	if len(tail) > 12 {
		tail = tail[len(tail)-12:]
	}
	tail = strings.ToValidUTF8(tail, "?")
	if opts.Temperature == 0 {
		return fmt.Sprintf("Greedy reply to «%s», thé end.", tail)
	}
	return fmt.Sprintf("Sampled reply %d to «%s».", opts.Seed%1000, tail)
}

type fakeDecoder struct{ buf []byte }

// Add holds back an incomplete UTF-8 sequence at the end, like the real
// stream decoder.
func (d *fakeDecoder) Add(id int) string {
	if id < fakeByteBase {
		return ""
	}
	d.buf = append(d.buf, byte(id-fakeByteBase))
	n := len(d.buf)
	for i := max(0, n-3); i < n; i++ {
		if utf8.RuneStart(d.buf[i]) && !utf8.FullRune(d.buf[i:]) {
			n = i
			break
		}
	}
	out := string(d.buf[:n])
	d.buf = append(d.buf[:0], d.buf[n:]...)
	return out
}

func (d *fakeDecoder) Flush() string {
	out := strings.ToValidUTF8(string(d.buf), "\uFFFD")
	d.buf = d.buf[:0]
	return out
}

type fakeSession struct {
	f       *fakeBackend
	maxCtx  int
	inUse   atomic.Bool
	prompts []string // every prompt it ran, as text
}

var errFakeFail = errors.New("fake: generation failed on request")

func (s *fakeSession) Generate(ctx context.Context, prompt []int, opts GenerateOptions, onToken func(int) bool) (string, error) {
	f := s.f
	if !s.inUse.CompareAndSwap(false, true) {
		panic("fake: session used by two requests at once")
	}
	defer s.inUse.Store(false)
	f.started.Add(1)
	n := f.active.Add(1)
	defer f.active.Add(-1)
	for {
		m := f.maxActive.Load()
		if n <= m || f.maxActive.CompareAndSwap(m, n) {
			break
		}
	}
	for deadline := time.Now().Add(5 * time.Second); f.active.Load() < f.barrier.Load() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Microsecond)
	}
	if len(prompt)+opts.MaxTokens > s.maxCtx {
		return "", fmt.Errorf("fake: prompt %d + max tokens %d exceed context %d", len(prompt), opts.MaxTokens, s.maxCtx)
	}
	text := decodeBytes(prompt)
	s.prompts = append(s.prompts, text)
	switch {
	case strings.Contains(text, "PANIC"):
		panic("fake: panic requested by the prompt")
	case strings.Contains(text, "FAIL"):
		return "", errFakeFail
	}
	replyFn := f.reply
	if replyFn == nil {
		replyFn = fakeReply
	}
	reply := encodeBytes(replyFn(text, opts))
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			f.cancelled.Add(1)
			return "", err
		}
		if i == opts.MaxTokens {
			return FinishLength, nil
		}
		if f.delay > 0 {
			select {
			case <-time.After(f.delay):
			case <-ctx.Done():
				f.cancelled.Add(1)
				return "", ctx.Err()
			}
		}
		if i == len(reply) {
			if f.emitStop {
				onToken(fakeEOS)
			}
			return FinishStop, nil
		}
		if opts.OnLogprobs != nil {
			// The reply token is the likeliest, then the next byte value.
			top := []TokenLogprob{{ID: reply[i], Logprob: -0.25}, {ID: reply[i] + 1, Logprob: -1.5}}
			opts.OnLogprobs(top[0], top[:min(opts.TopLogprobs, len(top))])
		}
		if !onToken(reply[i]) {
			return FinishStop, nil
		}
	}
}
