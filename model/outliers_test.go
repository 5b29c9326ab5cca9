package model

import (
	"math"
	"path/filepath"
	"testing"
)

// TestOutlierCheckpoint: the planted model is deterministic, keeps every
// shape, and its q columns now have outliers (the largest column norm over
// the median is far above the original's), while norms absorb the scales.
func TestOutlierCheckpoint(t *testing.T) {
	ck, err := OpenCheckpoint("../testdata/shakespeare-gemma2")
	if err != nil {
		t.Skip(err)
	}
	defer ck.Close()
	dirs := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")}
	for _, d := range dirs {
		if err := WriteOutlierCheckpoint(ck, d, 7); err != nil {
			t.Fatal(err)
		}
	}
	a, err := OpenCheckpoint(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenCheckpoint(dirs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	spread := func(c *Checkpoint, name string) float64 {
		tn, _ := c.Tensor(name)
		w, _ := tn.Float32s()
		cols := tn.Shape[1]
		norms := make([]float64, cols)
		for i, v := range w {
			norms[i%cols] += float64(v) * float64(v)
		}
		mx, sum := 0.0, 0.0
		for _, n := range norms {
			mx = math.Max(mx, n)
			sum += n
		}
		return math.Sqrt(mx / (sum / float64(cols)))
	}
	for _, kind := range []string{AttnQ, FFNGate, FFNDown, AttnO} {
		name := LayerName(2, kind)
		ta, _ := a.Tensor(name)
		tb, _ := b.Tensor(name)
		if string(ta.Data) != string(tb.Data) {
			t.Errorf("%s: two runs with one seed differ", name)
		}
		orig, planted := spread(ck, name), spread(a, name)
		t.Logf("%s: largest column norm / RMS column norm %.2f -> %.2f", name, orig, planted)
		if planted < 3*orig {
			t.Errorf("%s: no outlier columns planted (%.2f -> %.2f)", name, orig, planted)
		}
	}
}
