package quantize

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/cafeq/cafeq/model"
)

// A bit budget (CheckpointOptions.BPW): the user names a size in bits per
// linear weight, everything counted (scales, mins and any M⁻¹), and the
// quantizer chooses each matrix's grid to minimise the summed proxy loss
// within it. Data-free, like llama.cpp's hand-written Q3_K_M mix of types,
// but found per model:
//
//  1. every unit (q, k, gate, up, down of each layer, and v with o, which
//     QuantizeVO couples and so share one grid) is scored on every
//     candidate grid: the exact relative squared error ||W - Ŵ||²/||W||² of
//     its matrices, each weighted by budgetWeight, with a learned diagonal
//     and least-squares scales, on a fixed random sample of budgetRows
//     rows;
//  2. every unit starts on its cheapest grid, then the upgrade with the
//     largest loss decrease per added byte that still fits is taken, until
//     none fits (a greedy walk of the loss/bytes trade-off).
//
// The result is each linear tensor's grid, which the file records as the
// tensor's format.

// ErrBudgetTooSmall is returned when no choice of grids fits the budget.
var ErrBudgetTooSmall = errors.New("quantize: bit budget too small")

// budgetGrids are the candidates: every 3- and 4-bit grid, q5, q6 and q8,
// and the superblock grids q3_k, q4_k (sym and asym), q5_k and q6_k. The superblock
// grids are candidates by default now that they have SIMD kernels (Tiled8
// on every amd64 tier, NEON on arm64); CheckpointOptions.NoSuperGrids
// (quantize -k=false) leaves them out.
var budgetGrids = func() []Grid {
	var gs []Grid
	for _, bits := range []int{3, 4} {
		for _, group := range []int{32, 64, 128} {
			gs = append(gs, Grid{Bits: bits, Group: group}, Grid{Bits: bits, Group: group, Asym: true})
		}
		gs = append(gs, Grid{Bits: bits, Group: 32, Super: true}, Grid{Bits: bits, Group: 32, Asym: true, Super: true})
	}
	return append(gs, Grid{Bits: 6, Group: 32}, Grid{Bits: 8, Group: 32}, Grid{Bits: 6, Group: 32, Super: true},
		Grid{Bits: 5, Group: 32}, Grid{Bits: 5, Group: 32, Super: true})
}()

// budgetCandidates are the grids the budget chooses among.
func (o CheckpointOptions) budgetCandidates() []Grid {
	if !o.NoSuperGrids {
		return budgetGrids
	}
	var gs []Grid
	for _, g := range budgetGrids {
		if !g.Super {
			gs = append(gs, g)
		}
	}
	return gs
}

// budgetRows is the row sample each candidate is scored on.
const budgetRows = 128

// budgetUnit is matrices that get one grid.
type budgetUnit struct {
	names   []string
	weights int64
	cands   []budgetCand
}

type budgetCand struct {
	grid  Grid
	bytes int64
	loss  float64 // sum of the matrices' relative squared errors
}

// budgetUnits lists the units of a layer: v and o together when coupled.
func budgetUnits(l int, coupled bool) [][]string {
	n := func(k string) string { return model.LayerName(l, k) }
	units := [][]string{{n(model.AttnQ)}, {n(model.AttnK)}, {n(model.FFNGate)}, {n(model.FFNUp)}, {n(model.FFNDown)}}
	if coupled {
		return append(units, []string{n(model.AttnV), n(model.AttnO)})
	}
	return append(units, []string{n(model.AttnV)}, []string{n(model.AttnO)})
}

// sampleRows returns up to n rows of m, the same ones for every grid.
func sampleRows(m Matrix, n int, seed uint64) source {
	rows := m.Rows
	idx := make([]int, rows)
	for i := range idx {
		idx[i] = i
	}
	if rows > n {
		idx = rand.New(rand.NewPCG(seed, uint64(rows))).Perm(rows)[:n]
		sort.Ints(idx)
	}
	w := make([]float32, len(idx)*m.Cols)
	var ss float64
	for k, r := range idx {
		copy(w[k*m.Cols:(k+1)*m.Cols], m.Data[r*m.Cols:(r+1)*m.Cols])
	}
	for _, v := range w {
		ss += float64(v) * float64(v)
	}
	return source{w: w, rows: len(idx), cols: m.Cols, wt: 1 / math.Max(ss, 1e-30)}
}

// sampleLoss is the relative squared error of one sampled matrix on grid g,
// stored as W·D (d nil: D = I), after the least-squares refinement when
// flags asks for any. (The clipping search is left out here: it doubles
// the time and rarely changes which grid wins.)
func sampleLoss(src source, g Grid, d []float32, flags Refine) float64 {
	x := src.w
	if d != nil {
		x = scaleCols(src.w, src.rows, src.cols, d)
	}
	q, err := RTN(g, x, src.rows, src.cols)
	if err != nil {
		return math.Inf(1)
	}
	if flags != 0 {
		var colW []float64
		if d != nil {
			colW = make([]float64, len(d))
			for j, v := range d {
				colW[j] = 1 / (float64(v) * float64(v))
			}
		}
		refineRows(q, x, colW, RefineLSQ)
	}
	var e float64
	for _, v := range groupErrs(x, q, d) {
		e += v
	}
	return e * src.wt
}

// budgetDiagGrid is the grid the scoring's one diagonal per matrix is
// learned on (the finest groups, whose choice also suits larger ones).
var budgetDiagGrid = Grid{Bits: 4, Group: 32, Asym: true}

// planBudget chooses every linear tensor's grid for a budget of bpw bits per
// linear weight, of which transformBytes are already spent on M⁻¹. valid
// filters the grids each tensor may use.
func planBudget(ck *model.Checkpoint, opt CheckpointOptions, transformBytes int64, valid func(name string, g Grid) bool) (map[string]Grid, error) {
	cfg := ck.Config
	var units []*budgetUnit
	var totalWeights int64
	gains, err := blockGains(ck)
	if err != nil {
		return nil, err
	}
	for l := range cfg.NumHiddenLayers {
		coupled := opt.Method == MethodCafeQ
		for _, names := range budgetUnits(l, coupled) {
			u := &budgetUnit{names: names}
			var srcs []source
			for _, name := range names {
				t, err := ck.Tensor(name)
				if err != nil {
					return nil, err
				}
				data, err := t.Float32s()
				if err != nil {
					return nil, err
				}
				if err := checkMatrix(data, t.Shape[0], t.Shape[1]); err != nil {
					return nil, fmt.Errorf("quantize: %q: %w", name, err)
				}
				m := Matrix{Name: name, Rows: t.Shape[0], Cols: t.Shape[1], Data: data}
				src := sampleRows(m, budgetRows, opt.Seed)
				w, err := budgetWeight(gains, name, int64(m.Rows)*int64(m.Cols))
				if err != nil {
					return nil, err
				}
				src.wt *= w
				srcs = append(srcs, src)
				u.weights += int64(m.Rows) * int64(m.Cols)
			}
			for _, g := range opt.budgetCandidates() {
				ok := true
				var bytes int64
				for i, name := range names {
					t, _ := ck.Tensor(name)
					ok = ok && g.Validate(srcs[i].cols) == nil && valid(name, g)
					if ok {
						bytes += int64(t.Shape[0]) * int64(g.Format().RowBytes(t.Shape[1]))
					}
				}
				if ok {
					u.cands = append(u.cands, budgetCand{grid: g, bytes: bytes})
				}
			}
			if len(u.cands) == 0 {
				return nil, fmt.Errorf("quantize: no grid fits %v", names)
			}
			diags := make([][]float32, len(srcs))
			if opt.Diag && opt.Method == MethodCafeQ {
				for i, src := range srcs {
					diags[i] = learnDiag([]source{src}, budgetDiagGrid)
				}
			}
			parallelFor(len(u.cands), func(c int) {
				for i, src := range srcs {
					u.cands[c].loss += sampleLoss(src, u.cands[c].grid, diags[i], opt.Refine)
				}
			})
			sort.Slice(u.cands, func(i, j int) bool { return u.cands[i].bytes < u.cands[j].bytes })
			units = append(units, u)
			totalWeights += u.weights
		}
		if opt.Progress != nil {
			opt.Progress(l+1, cfg.NumHiddenLayers, fmt.Sprintf("bit budget: layer %d scored", l))
		}
	}
	budget := int64(math.Floor(opt.BPW*float64(totalWeights)/8)) - transformBytes
	choice := make([]int, len(units))
	var used int64
	for i, u := range units {
		// Cheapest first; among equally cheap grids, the lowest loss.
		for c, cand := range u.cands {
			if cand.bytes == u.cands[0].bytes && cand.loss < u.cands[choice[i]].loss {
				choice[i] = c
			}
		}
		used += u.cands[choice[i]].bytes
	}
	if used > budget {
		return nil, fmt.Errorf("%w: %.3f bits per linear weight is below the smallest file possible here (%.3f with every matrix on its smallest grid and %d bytes of transforms)",
			ErrBudgetTooSmall, opt.BPW, 8*float64(used+transformBytes)/float64(totalWeights), transformBytes)
	}
	for {
		bestU, bestC, bestRate := -1, -1, 0.0
		for i, u := range units {
			cur := u.cands[choice[i]]
			for c, cand := range u.cands {
				db := cand.bytes - cur.bytes
				dl := cur.loss - cand.loss
				if !(dl > 0) || used+db > budget { // a NaN loss is no gain either
					continue
				}
				rate := math.Inf(1)
				if db > 0 {
					rate = dl / float64(db)
				}
				if rate > bestRate {
					bestU, bestC, bestRate = i, c, rate
				}
			}
		}
		if bestU < 0 {
			break
		}
		used += units[bestU].cands[bestC].bytes - units[bestU].cands[choice[bestU]].bytes
		choice[bestU] = bestC
	}
	grids := map[string]Grid{}
	for i, u := range units {
		for _, n := range u.names {
			grids[n] = u.cands[choice[i]].grid
		}
	}
	return grids, nil
}

// budgetWeight is how much a matrix's relative squared error counts: its
// block's gain (see blockGains) times the square root of the matrix's size,
// between weighing every matrix alike and every weight alike. On the trained
// test model (16 steps, 12 kB of eval.txt, ctx 256), before blockGains
// counted the blocks after each one, KL at 3.44 / 4.5 bits per weight was
// 0.0106 / 0.00252 weighing every weight alike, 0.0098 / 0.00259 by the
// square root of the size alone, 0.0084 / 0.00252 with the post-norm gain
// and every weight alike, and 0.0083 / 0.00248 with both; weighing every
// matrix alike lost at 4.5 (0.00303: it gives the small k and v six bits and
// the FFN too few).
func budgetWeight(gains []float64, name string, weights int64) (float64, error) {
	b, err := blockOf(name)
	if err != nil {
		return 0, err
	}
	return gains[b] * math.Sqrt(float64(weights)), nil
}

// blockOf is the block a layer matrix belongs to: 2l for the attention of
// layer l (q, k, v, o), 2l+1 for its FFN (gate, up, down).
func blockOf(name string) (int, error) {
	l, kind, ok := model.SplitLayerName(name)
	if !ok {
		return 0, fmt.Errorf("quantize: budget: %q is not a layer matrix", name)
	}
	if kind == model.FFNGate || kind == model.FFNUp || kind == model.FFNDown {
		return 2*l + 1, nil
	}
	return 2 * l, nil
}

// blockGains returns, per block (see blockOf), how much a relative error of
// the block's output reaches the final residual stream, from the weights
// alone. Gemma 2 normalises each block's output and scales it by the
// post-norm's (1+w) before adding it to the residual stream, so a relative
// error ε of the output adds an error of squared size ε²·g_b², with g_b² the
// mean square of (1+w). Each later block b' reads the perturbed stream
// through its pre-norm: a relative perturbation ρ = e/r_b'² of its input
// (r_b'² the stream's mean square there) is taken to perturb its output by
// the same relative amount, adding ρ·g_b'². So an error e added after block
// b reaches the end as e·∏_{b'>b}(1 + g_b'²/r_b'²), and the block counts
//
//	g_b² · ∏_{b'>b} (1 + g_b'²/r_b'²)
//
// with r² estimated as the scaled embedding's mean square (Gemma multiplies
// the embedding by sqrt(d_model)) plus the g² of every earlier block, as if
// the blocks' outputs were uncorrelated. Early blocks, added to a small
// stream that every later block reads, count most: on the trained test
// model layer 0's attention 5.7 times the last FFN. Measured there (all of
// eval.txt, ctx 256, KL to the checkpoint), this moved -k -bpw 3.44 from
// 0.00830 to 0.00716 and -bpw 3.44 from 0.00908 to 0.00807; at 4.5 bits it
// was neutral (0.00204 to 0.00206 with -k, 0.00256 to 0.00256 without).
// Quantizing one layer's matrices at 8 bits showed the same order: layer 0
// took 36% of the 3.44-bit file's KL, layer 5 12%.
func blockGains(ck *model.Checkpoint) ([]float64, error) {
	cfg := ck.Config
	emb, err := meanSquare(ck, model.NameEmbed, 0)
	if err != nil {
		return nil, err
	}
	r2 := emb * float64(cfg.HiddenSize)
	nb := 2 * cfg.NumHiddenLayers
	g2 := make([]float64, nb)
	ratio := make([]float64, nb)
	for b := range nb {
		norm := model.PostAttnNorm
		if b%2 == 1 {
			norm = model.PostFFNNorm
		}
		if g2[b], err = meanSquare(ck, model.LayerName(b/2, norm), 1); err != nil {
			return nil, err
		}
		ratio[b] = g2[b] / math.Max(r2, 1e-30)
		r2 += g2[b]
	}
	gains := make([]float64, nb)
	later := 1.0
	for b := nb - 1; b >= 0; b-- {
		gains[b] = g2[b] * later
		later *= 1 + ratio[b]
	}
	return gains, nil
}

// meanSquare is the mean of (v+offset)² over the entries of a tensor, read
// row by row (the 2B embedding is 2.4 GB as float32).
func meanSquare(ck *model.Checkpoint, name string, offset float64) (float64, error) {
	t, err := ck.Tensor(name)
	if err != nil {
		return 0, err
	}
	cols := t.Shape[len(t.Shape)-1]
	rows := 1
	for _, n := range t.Shape[:len(t.Shape)-1] {
		rows *= n
	}
	row := make([]float32, cols)
	var s float64
	for r := range rows {
		if len(t.Shape) == 1 {
			if row, err = t.Float32s(); err != nil {
				return 0, err
			}
		} else if err := t.RowFloat32s(r, row); err != nil {
			return 0, err
		}
		for _, v := range row {
			f := float64(v) + offset
			s += f * f
		}
	}
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return 0, fmt.Errorf("quantize: %q holds NaN or infinite values", name)
	}
	return s / float64(rows*cols), nil
}
