package runtime

import (
	"testing"
	"time"
)

// TestBenchReportsEachRound: OnRound sees every round as it finishes, with
// the times the result keeps.
func TestBenchReportsEachRound(t *testing.T) {
	e, err := Load("../testdata/gemma2-tiny", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var rounds []int
	var prefills, decodes []time.Duration
	res, err := e.Bench(BenchOptions{Prompt: 8, Gen: 4, Rounds: 3, OnRound: func(r int, p, d time.Duration) {
		rounds = append(rounds, r)
		prefills, decodes = append(prefills, p), append(decodes, d)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rounds) != 3 || rounds[0] != 0 || rounds[2] != 2 {
		t.Fatalf("rounds reported: %v", rounds)
	}
	for i := range rounds {
		if prefills[i] != res.PrefillRuns[i] || decodes[i] != res.DecodeRuns[i] {
			t.Errorf("round %d: reported %v/%v, result %v/%v", i, prefills[i], decodes[i], res.PrefillRuns[i], res.DecodeRuns[i])
		}
	}
}
