package runtime

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/cafeq/cafeq/model"
)

// golden is a reference run: token ids and gemma_pytorch's float32 logits.
type golden struct {
	ids    []int
	logits []float32 // (len(ids), vocab)
	vocab  int
}

func loadGolden(t *testing.T, dir string) golden {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		IDs []int `json:"ids"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	shape, logits, err := model.ReadNPY(filepath.Join(dir, "logits.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 2 || shape[0] != len(g.IDs) {
		t.Fatalf("logits shape %v for %d ids", shape, len(g.IDs))
	}
	return golden{ids: g.IDs, logits: logits, vocab: shape[1]}
}

// maxRelDiff is max|a-b| / max|b|: the golden tolerance is relative to the
// logit scale, since soft-capped logits span about ±30.
func maxRelDiff(a, b []float32) float64 {
	var diff, scale float64
	for i := range b {
		diff = math.Max(diff, math.Abs(float64(a[i]-b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return diff / scale
}

func allLogits(t *testing.T, s *Session, ids []int, vocab int) []float32 {
	t.Helper()
	out := make([]float32, 0, len(ids)*vocab)
	if _, err := s.Forward(ids, func(i int, l []float32) { out = append(out, l...) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGoldenLogits checks a full f32 pass against gemma_pytorch. Tolerance
// 1e-3 of the logit scale: float32 summation order alone moves logits by
// ~1e-6 relative; a wrong detail (RoPE pairing, window, cap) moves them >1e-2.
func TestGoldenLogits(t *testing.T) {
	for _, dir := range []string{"../testdata/gemma2-tiny", "../testdata/shakespeare-gemma2"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			g := loadGolden(t, dir)
			e, err := Load(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			s, err := e.NewSession(len(g.ids))
			if err != nil {
				t.Fatal(err)
			}
			got := allLogits(t, s, g.ids, g.vocab)
			if d := maxRelDiff(got, g.logits); d > 1e-3 {
				t.Fatalf("full pass: max |diff| = %.3g of the logit scale, want <= 1e-3", d)
			} else {
				t.Logf("full pass: max |diff| = %.3g of the logit scale", d)
			}
		})
	}
}

// TestDecodeMatchesFullPass runs the golden prompt token by token through the
// KV cache, and in uneven chunks, and compares with one full pass.
func TestDecodeMatchesFullPass(t *testing.T) {
	g := loadGolden(t, "../testdata/gemma2-tiny")
	e, err := Load("../testdata/gemma2-tiny", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, _ := e.NewSession(len(g.ids))
	full := allLogits(t, s, g.ids, g.vocab)
	s.Reset()
	var steps []float32
	for _, id := range g.ids {
		l, err := s.Step(id)
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, l...)
	}
	if d := maxRelDiff(steps, full); d > 1e-5 {
		t.Fatalf("token by token vs full pass: %.3g", d)
	}
	s.Reset()
	var chunks []float32
	for start, size := 0, 1; start < len(g.ids); start, size = start+size, size+2 {
		part := g.ids[start:min(len(g.ids), start+size)]
		if _, err := s.Forward(part, func(i int, l []float32) { chunks = append(chunks, l...) }); err != nil {
			t.Fatal(err)
		}
	}
	if d := maxRelDiff(chunks, full); d > 1e-5 {
		t.Fatalf("chunked vs full pass: %.3g", d)
	}
}
