package quantize

import (
	"errors"
	"io/fs"
	"os"
	"testing"

	"github.com/cafeq/cafeq/model"
)

// openTiny opens the tiny Gemma 2 fixture, skipping when it is missing
// unless CAFEQ_REQUIRE_FIXTURES=1.
func openTiny(t testing.TB) *model.Checkpoint {
	t.Helper()
	ck, err := model.OpenCheckpoint("../testdata/gemma2-tiny")
	if errors.Is(err, fs.ErrNotExist) && os.Getenv("CAFEQ_REQUIRE_FIXTURES") != "1" {
		t.Skipf("fixture missing: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

func tensor(t testing.TB, ck *model.Checkpoint, name string) Matrix {
	t.Helper()
	ts, err := ck.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	data, err := ts.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return Matrix{Name: name, Rows: ts.Shape[0], Cols: ts.Shape[1], Data: data}
}

// TestTinyModelCafeQBeatsRTN quantizes every linear matrix of the tiny
// Gemma 2 (sharing transforms like the runtime: q/k/v and gate/up; v/o as a
// coupled pair) and checks the CafeQ error is never above RTN's.
func TestTinyModelCafeQBeatsRTN(t *testing.T) {
	ck := openTiny(t)
	for _, g := range []Grid{{Bits: 3, Group: 32, Asym: true}} {
		var sumC, sumR float64
		n := 0
		for l := range ck.Config.NumHiddenLayers {
			groups := [][]string{
				{model.AttnQ, model.AttnK, model.AttnV},
				{model.FFNGate, model.FFNUp},
				{model.FFNDown},
			}
			for _, grp := range groups {
				var ms []Matrix
				for _, n := range grp {
					ms = append(ms, tensor(t, ck, model.LayerName(l, n)))
				}
				res, err := QuantizeShared(ms, Options{Method: MethodCafeQ, Grid: g, Steps: 4, Seed: 1})
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range res.Report {
					n++
					sumC += e.RelErr
					sumR += e.RTNRelErr
					if e.RelErr > e.RTNRelErr*(1+1e-9) {
						t.Errorf("%v %s: cafeq %.5f > rtn %.5f", g, e.Name, e.RelErr, e.RTNRelErr)
					}
				}
			}
			c := ck.Config
			v, o := tensor(t, ck, model.LayerName(l, model.AttnV)), tensor(t, ck, model.LayerName(l, model.AttnO))
			res, err := QuantizeVO(v, o, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim,
				Options{Method: MethodCafeQ, Grid: g, Steps: 4, Rounding: true, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if e := res.Report[0]; e.RelErr > e.RTNRelErr*(1+1e-9) {
				t.Errorf("%v layer %d v/o: paired cafeq %.5f > rtn %.5f", g, l, e.RelErr, e.RTNRelErr)
			} else {
				t.Logf("%v layer %d v/o paired error: rtn %.4f cafeq %.4f", g, l, e.RTNRelErr, e.RelErr)
			}
		}
		t.Logf("%v: mean relative error over %d matrices: rtn %.4f cafeq %.4f", g, n, sumR/float64(n), sumC/float64(n))
	}
}
