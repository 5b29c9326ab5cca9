package runtime

import (
	"math"
	"testing"
)

func TestSamplerAdjust(t *testing.T) {
	s := newSampler(4)
	cases := []struct {
		name   string
		o      SampleOptions
		recent []int
		want   []float32
	}{
		{"none", SampleOptions{}, []int{0}, []float32{2, 1.9, -1, 0}},
		{"logit bias", SampleOptions{LogitBias: map[int]float32{3: 100, 0: -100, 9: 5}}, nil, []float32{-98, 1.9, -1, 100}},
		{"repeat divides a positive logit", SampleOptions{RepeatPenalty: 2}, []int{0, 0}, []float32{1, 1.9, -1, 0}},
		{"repeat multiplies a negative logit", SampleOptions{RepeatPenalty: 2}, []int{2}, []float32{2, 1.9, -2, 0}},
		{"presence once, frequency per occurrence", SampleOptions{PresencePenalty: 0.5, FrequencyPenalty: 0.1},
			[]int{0, 1, 0}, []float32{2 - 0.5 - 0.2, 1.9 - 0.5 - 0.1, -1, 0}},
	}
	for _, c := range cases {
		for range 2 { // the counts scratch must be clean for the next draw
			logits := []float32{2, 1.9, -1, 0}
			s.adjust(logits, c.recent, c.o)
			for i := range logits {
				if math.Abs(float64(logits[i]-c.want[i])) > 1e-6 {
					t.Fatalf("%s: %v, want %v", c.name, logits, c.want)
				}
			}
		}
	}
	// Only the last PenaltyWindow tokens count.
	logits := []float32{2, 1.9, -1, 0}
	recent := make([]int, PenaltyWindow+1) // token 0 first, then PenaltyWindow times token 3
	for i := 1; i < len(recent); i++ {
		recent[i] = 3
	}
	s.adjust(logits, recent, SampleOptions{PresencePenalty: 1})
	if logits[0] != 2 || logits[3] != -1 {
		t.Errorf("penalty window: %v", logits)
	}
}

func TestSamplerMinP(t *testing.T) {
	s := newSampler(3)
	seen := map[int]int{}
	for seed := range uint64(2000) {
		s.seed(seed)
		logits := []float32{0, -0.1, -3.5} // p2/p0 = e^-3.5 = 0.03, below min_p 0.05
		seen[s.sample(logits, SampleOptions{Temperature: 1, MinP: 0.05})]++
	}
	if seen[2] != 0 || seen[0] == 0 || seen[1] == 0 {
		t.Errorf("min_p 0.05: draws %v; token 2 must never come, 0 and 1 must", seen)
	}
	seen = map[int]int{}
	for seed := range uint64(2000) {
		s.seed(seed)
		seen[s.sample([]float32{0, -0.1, -3.5}, SampleOptions{Temperature: 1})]++
	}
	if seen[2] == 0 {
		t.Errorf("without min_p token 2 (p=%.4f) never drawn in 2000", math.Exp(-3.5)/(1+math.Exp(-0.1)+math.Exp(-3.5)))
	}
}

func TestLogprobs(t *testing.T) {
	logits := []float32{1, 3, -2, 3.5, float32(math.Inf(-1))}
	top := make([]TokenLogprob, 3)
	lp := logprobs(logits, 1, top)
	var z float64
	for _, l := range logits {
		z += math.Exp(float64(l))
	}
	if want := 3 - math.Log(z); math.Abs(float64(lp)-want) > 1e-5 {
		t.Errorf("logprob %g, want %g", lp, want)
	}
	if top[0].ID != 3 || top[1].ID != 1 || top[2].ID != 0 || top[0].Logprob < top[1].Logprob {
		t.Errorf("top %v", top)
	}
}
