package runtime

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
)

// TestBatchedDecodeMatchesAlone generates greedily from several sessions at
// once (their steps batched) and checks each matches its run alone.
// Both KV cache types.
func TestBatchedDecodeMatchesAlone(t *testing.T) {
	for _, f16 := range []bool{false, true} {
		t.Run(fmt.Sprintf("kvf16=%v", f16), func(t *testing.T) { testBatchedDecode(t, Options{KVF16: f16}) })
	}
}

func testBatchedDecode(t *testing.T, opts Options) {
	e, err := Load("../testdata/shakespeare-gemma2", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	prompts := []string{"ROMEO:", "JULIET:\nO", "KING RICHARD III:\nNow is", "First Citizen:\nWe", "HAMLET:"}
	gen := func(s *Session, p string) []int {
		ids := append([]int{e.Tokenizer.BOS()}, e.Tokenizer.Encode(p)...)
		var out []int
		if _, err := s.Generate(context.Background(), ids, GenerateOptions{MaxTokens: 24}, func(id int) bool {
			out = append(out, id)
			return true
		}); err != nil {
			t.Error(err)
		}
		return out
	}
	alone := make([][]int, len(prompts))
	for i, p := range prompts {
		s, _ := e.NewSession(64)
		alone[i] = gen(s, p)
	}
	together := make([][]int, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		s, _ := e.NewSession(64)
		wg.Add(1)
		go func() {
			defer wg.Done()
			together[i] = gen(s, p)
		}()
	}
	wg.Wait()
	for i := range prompts {
		if !slices.Equal(alone[i], together[i]) {
			t.Errorf("prompt %q: alone %v, batched %v", prompts[i], alone[i], together[i])
		}
	}
}

// BenchmarkConcurrentDecode measures total decode throughput of N sessions
// generating at once, whose steps the engine batches.
// CAFEQ_BENCH_MODEL picks another model (e.g. a .cq file).
func BenchmarkConcurrentDecode(b *testing.B) {
	path := "../testdata/shakespeare-gemma2"
	if p := os.Getenv("CAFEQ_BENCH_MODEL"); p != "" {
		path = p
	}
	e, err := Load(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			sessions := make([]*Session, n)
			for i := range sessions {
				sessions[i], _ = e.NewSession(128)
			}
			const tokens = 32
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				var wg sync.WaitGroup
				for i, s := range sessions {
					wg.Add(1)
					go func() {
						defer wg.Done()
						s.Reset()
						s.Generate(context.Background(), []int{2, 100 + i}, GenerateOptions{MaxTokens: tokens}, func(int) bool { return true })
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(float64(n*tokens*b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
