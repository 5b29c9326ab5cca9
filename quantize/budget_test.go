package quantize

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/cafeq/cafeq/kernels"
	"github.com/cafeq/cafeq/model"
	"github.com/cafeq/cafeq/model/tokenizer"
)

// TestBlockGains recomputes blockGains on the trained model from whole
// tensors in float64: block b counts g_b^2 times prod over later blocks of
// (1 + g^2/r^2), r^2 the residual stream's mean square before each (the
// embedding times sqrt(d_model), plus every earlier block's g^2). Layer 0's
// attention, added to the smallest stream, counts more than the last FFN.
func TestBlockGains(t *testing.T) {
	ck, err := model.OpenCheckpoint("../testdata/shakespeare-gemma2")
	if err != nil {
		t.Skipf("fixture missing: %v", err)
	}
	defer ck.Close()
	meanSq := func(name string, off float64) float64 {
		tn, err := ck.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		v, err := tn.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		for _, x := range v {
			s += (float64(x) + off) * (float64(x) + off)
		}
		return s / float64(len(v))
	}
	cfg := ck.Config
	var g2, r2 []float64
	stream := meanSq(model.NameEmbed, 0) * float64(cfg.HiddenSize)
	for l := range cfg.NumHiddenLayers {
		for _, norm := range []string{model.PostAttnNorm, model.PostFFNNorm} {
			g := meanSq(model.LayerName(l, norm), 1)
			g2, r2 = append(g2, g), append(r2, stream)
			stream += g
		}
	}
	got, err := blockGains(ck)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(g2) {
		t.Fatalf("%d gains for %d blocks", len(got), len(g2))
	}
	for b := range g2 {
		want := g2[b]
		for later := b + 1; later < len(g2); later++ {
			want *= 1 + g2[later]/r2[later]
		}
		if math.Abs(got[b]-want) > 1e-9*want {
			t.Errorf("block %d: gain %.9g, want %.9g", b, got[b], want)
		}
	}
	first, err := budgetWeight(got, model.LayerName(0, model.AttnQ), 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	last, err := budgetWeight(got, model.LayerName(cfg.NumHiddenLayers-1, model.FFNDown), 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	if first <= 2*last {
		t.Errorf("layer 0's q counts %.4g, the last down %.4g: want the first layer to count several times more", first, last)
	}
	if _, err := budgetWeight(got, model.NameEmbed, 1); err == nil {
		t.Error("budgetWeight accepted the embedding")
	}
}

// TestRefinedEmbedding: with the least-squares refinement the stored
// embedding (q6 and a 4-bit asymmetric format) is closer to the checkpoint's
// than plain RTN's, and RTN runs still store exactly kernels' RTN.
func TestRefinedEmbedding(t *testing.T) {
	dir := "../testdata/gemma2-tiny"
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		t.Skipf("fixture missing: %v", err)
	}
	defer ck.Close()
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	et, err := ck.Tensor(model.NameEmbed)
	if err != nil {
		t.Fatal(err)
	}
	want, err := et.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	rows, cols := et.Shape[0], et.Shape[1]
	// embedErr quantizes the checkpoint and returns the squared error of
	// its stored embedding and whether it is byte for byte plain RTN.
	embedErr := func(f kernels.Format, refine Refine) (float64, bool) {
		out := filepath.Join(t.TempDir(), "m.cq")
		opt := CheckpointOptions{Options: Options{Method: MethodRTN, Grid: Grid{Bits: 4, Group: 32}, Refine: refine}, EmbedFormat: f}
		if _, err := QuantizeCheckpoint(ck, tok, out, opt); err != nil {
			t.Fatal(err)
		}
		cq, err := model.OpenCQ(out)
		if err != nil {
			t.Fatal(err)
		}
		defer cq.Close()
		ct, err := cq.Tensor(model.NameEmbed)
		if err != nil {
			t.Fatal(err)
		}
		rb := f.RowBytes(cols)
		row := make([]float32, cols)
		rtn := make([]byte, rb)
		var e float64
		isRTN := true
		for r := range rows {
			stored := ct.Data[r*rb : (r+1)*rb]
			if err := kernels.DequantizeRow(f, row, stored); err != nil {
				t.Fatal(err)
			}
			for j, v := range row {
				d := float64(v - want[r*cols+j])
				e += d * d
			}
			if err := kernels.QuantizeRowRTN(f, rtn, want[r*cols:(r+1)*cols]); err != nil {
				t.Fatal(err)
			}
			isRTN = isRTN && string(rtn) == string(stored)
		}
		return e, isRTN
	}
	for _, f := range []kernels.Format{kernels.FormatQ6, {Type: kernels.Q4, Group: 32, Asym: true}} {
		plain, plainRTN := embedErr(f, 0)
		refined, refinedRTN := embedErr(f, RefineLSQ)
		t.Logf("%s: embedding squared error %.6g RTN, %.6g refined", f, plain, refined)
		if !plainRTN {
			t.Errorf("%s: without refinement the embedding is not plain RTN", f)
		}
		if refinedRTN || !(refined < plain) {
			t.Errorf("%s: refined embedding error %.6g, RTN %.6g: want lower", f, refined, plain)
		}
	}
}

// TestBudgetSuperGrids: the superblock grids are budget candidates by
// default and NoSuperGrids leaves out exactly them; on the trained model the
// plan at 3.44 bits per weight puts some matrices on them by default and
// none with NoSuperGrids, both within the budget.
func TestBudgetSuperGrids(t *testing.T) {
	var super, plain int
	for _, g := range budgetGrids {
		if g.Super {
			super++
		} else {
			plain++
		}
	}
	def := CheckpointOptions{}.budgetCandidates()
	without := CheckpointOptions{NoSuperGrids: true}.budgetCandidates()
	if super != 6 || len(def) != len(budgetGrids) || len(without) != plain {
		t.Fatalf("%d candidates by default, %d with NoSuperGrids, of %d grids (%d superblock)", len(def), len(without), len(budgetGrids), super)
	}
	for _, g := range without {
		if g.Super {
			t.Errorf("NoSuperGrids kept %s", g)
		}
	}

	ck, err := model.OpenCheckpoint("../testdata/shakespeare-gemma2")
	if err != nil {
		t.Skipf("fixture missing: %v", err)
	}
	defer ck.Close()
	for _, noSuper := range []bool{false, true} {
		// quantize -bpw 3.44's options, -k=false when noSuper
		opt := CheckpointOptions{Options: Options{Method: MethodCafeQ, NoBlock: true, Block: 256, Seed: 1, Diag: true, Refine: RefineClip | RefineLSQ}, BPW: 3.44, NoSuperGrids: noSuper}
		grids, err := planBudget(ck, opt, 0, opt.budgetValid(ck.Config, false))
		if err != nil {
			t.Fatal(err)
		}
		var bits float64
		var weights int64
		onSuper := 0
		for name, g := range grids {
			tn, err := ck.Tensor(name)
			if err != nil {
				t.Fatal(err)
			}
			bits += 8 * float64(tn.Shape[0]*g.Format().RowBytes(tn.Shape[1]))
			weights += int64(tn.Shape[0] * tn.Shape[1])
			if g.Super {
				onSuper++
			}
		}
		bpw := bits / float64(weights)
		t.Logf("NoSuperGrids %v: %d of %d matrices on superblock grids, %.4f bits per weight", noSuper, onSuper, len(grids), bpw)
		if bpw > 3.44 || (onSuper == 0) != noSuper {
			t.Errorf("NoSuperGrids %v: %d matrices on superblock grids, %.4f bits per weight", noSuper, onSuper, bpw)
		}
	}
}
