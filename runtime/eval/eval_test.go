package eval

import (
	"math"
	"os"
	"slices"
	"testing"

	"github.com/cafeq/cafeq/runtime"
)

const shakespeare = "../../testdata/shakespeare-gemma2"

// TestKL checks KL and LogProb against closed forms: two-outcome
// distributions, invariance to a shift of the logits, zero for equal
// inputs, and no overflow at logits of 1e4.
func TestKL(t *testing.T) {
	// softmax([0, log 3]) = (1/4, 3/4); softmax([0, 0]) = (1/2, 1/2).
	p := []float32{0, float32(math.Log(3))}
	q := []float32{0, 0}
	want := 0.25*math.Log(0.25/0.5) + 0.75*math.Log(0.75/0.5)
	if got := KL(p, q); math.Abs(got-want) > 1e-7 {
		t.Errorf("KL = %.9f, want %.9f", got, want)
	}
	shifted := []float32{1e4, 1e4 + float32(math.Log(3))}
	if got := KL(shifted, q); math.Abs(got-want) > 1e-3 || math.IsNaN(got) {
		t.Errorf("KL of logits shifted by 1e4 = %.9f, want %.9f", got, want)
	}
	if got := KL(p, p); got != 0 {
		t.Errorf("KL(p, p) = %g", got)
	}
	if got, want := LogProb(p, 1), math.Log(0.75); math.Abs(got-want) > 1e-7 {
		t.Errorf("LogProb = %.9f, want %.9f", got, want)
	}
	if got, want := LogSumExp([]float32{1e4, 1e4}), 1e4+math.Log(2); math.Abs(got-want) > 1e-9 {
		t.Errorf("LogSumExp = %.9f, want %.9f", got, want)
	}
}

// TestWindows: every token lands in exactly one window, in order, and no
// window holds more than ctx-1 of them.
func TestWindows(t *testing.T) {
	tokens := make([]int, 10)
	for i := range tokens {
		tokens[i] = i
	}
	for _, ctx := range []int{2, 3, 5, 11, 12, 100} {
		ws := Windows(tokens, ctx)
		if want := (len(tokens) + ctx - 2) / (ctx - 1); len(ws) != want {
			t.Errorf("ctx %d: %d windows, want %d", ctx, len(ws), want)
		}
		var all []int
		for _, w := range ws {
			if len(w) == 0 || len(w) > ctx-1 {
				t.Errorf("ctx %d: window of %d tokens", ctx, len(w))
			}
			all = append(all, w...)
		}
		if !slices.Equal(all, tokens) {
			t.Errorf("ctx %d: windows hold %v", ctx, all)
		}
	}
}

// TestCompareSelf scores the trained test model against itself, and against
// a hand-run of the same windows: KL 0, full top-1 agreement, the same
// perplexity as the reference, and that perplexity equal to exp of the mean
// negative log-likelihood of the token-by-token logits.
func TestCompareSelf(t *testing.T) {
	e, err := runtime.Load(shakespeare, runtime.Options{})
	if err != nil {
		if os.IsNotExist(err) && os.Getenv("CAFEQ_REQUIRE_FIXTURES") != "1" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	defer e.Close()
	tokens := e.Tokenizer.Encode("ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n")
	const ctx = 16
	var calls []int
	res, err := Compare(e, []*runtime.Engine{e, e}, tokens, ctx, func(done, total int) { calls = append(calls, done) })
	if err != nil {
		t.Fatal(err)
	}
	nw := len(Windows(tokens, ctx))
	if len(calls) != nw+1 || calls[0] != 0 || calls[nw] != nw {
		t.Errorf("progress calls %v for %d windows", calls, nw)
	}
	// The same windows by hand, one token at a time.
	s, err := e.NewSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var nll float64
	for _, w := range Windows(tokens, ctx) {
		s.Reset()
		input := append([]int{e.Tokenizer.BOS()}, w[:len(w)-1]...)
		for i, tok := range input {
			if _, err := s.Forward([]int{tok}, func(_ int, l []float32) { nll -= LogProb(l, w[i]) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	hand := math.Exp(nll / float64(len(tokens)))
	for i, r := range res {
		if r.Tokens != len(tokens) || r.Ctx != ctx || r.KLD == nil {
			t.Fatalf("model %d: %+v", i, r)
		}
		if *r.KLD != 0 || *r.Top1Agree != 1 || r.PPL != *r.RefPPL {
			t.Errorf("model %d against itself: KL %g, top-1 %g, ppl %g vs %g", i, *r.KLD, *r.Top1Agree, r.PPL, *r.RefPPL)
		}
		// One pass and token-by-token differ only by float32 rounding.
		if math.Abs(r.PPL-hand) > 1e-3*hand {
			t.Errorf("model %d: perplexity %.6f, token by token %.6f", i, r.PPL, hand)
		}
	}
	if _, err := Perplexity(e, nil, tokens, 1, nil); err == nil {
		t.Error("ctx 1 accepted")
	}
}
