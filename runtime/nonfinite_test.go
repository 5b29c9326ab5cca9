package runtime

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/cafeq/cafeq/kernels"
)

// TestNonFiniteLogitsAreAnError: one NaN in a norm used to come out as
// confident tokens (on AVX2 the softcap turned NaN into +cap, so every
// logit was 30 and greedy decoding emitted token 0). On every tier, Forward,
// Step and Generate must return ErrNonFinite and sample nothing.
func TestNonFiniteLogitsAreAnError(t *testing.T) {
	for _, tier := range kernels.Tiers() {
		t.Run(tier.String(), func(t *testing.T) {
			restore, err := kernels.ForceTier(tier)
			if err != nil {
				t.Fatal(err)
			}
			defer restore()
			for _, where := range []string{"final norm", "layer 0 attention norm"} {
				e, err := Load("../testdata/gemma2-tiny", Options{Threads: 2})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				nan := float32(math.NaN())
				if where == "final norm" {
					e.w.finalNorm[3] = nan
				} else {
					e.w.layers[0].attnNorm[3] = nan
				}
				s, err := e.NewSession(32)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Forward([]int{2, 10, 11}, nil); !errors.Is(err, ErrNonFinite) {
					t.Errorf("%s: Forward: %v, want ErrNonFinite", where, err)
				}
				if _, err := s.Forward([]int{12}, func(int, []float32) {}); !errors.Is(err, ErrNonFinite) {
					t.Errorf("%s: Forward (all positions): %v, want ErrNonFinite", where, err)
				}
				if _, err := s.Step(13); !errors.Is(err, ErrNonFinite) {
					t.Errorf("%s: Step: %v, want ErrNonFinite", where, err)
				}
				s.Reset()
				var got []int
				_, err = s.Generate(context.Background(), []int{2, 10}, GenerateOptions{MaxTokens: 4}, func(id int) bool {
					got = append(got, id)
					return true
				})
				if !errors.Is(err, ErrNonFinite) || len(got) != 0 {
					t.Errorf("%s: Generate gave tokens %v and error %v, want no token and ErrNonFinite", where, got, err)
				}
			}
		})
	}
}
