package quantize

import (
	"math"

	"github.com/cafeq/cafeq/kernels"
)

// Refine selects data-free refinements of each group's scale (and min) that
// run after the levels are first chosen. Each is accepted per group only when
// it lowers that group's (weighted) error, and per transform block only when
// it lowers the exact error, so a refinement never makes a matrix worse.
type Refine uint8

const (
	// RefineClip searches shrunken and stretched ranges around min-max
	// (like llama.cpp k-quants' make_qkx search): for each candidate step
	// it rounds, refits scale and min by least squares and keeps the best.
	RefineClip Refine = 1 << iota
	// RefineLSQ alternates, HQQ-style, between the least-squares (scale,
	// min) for fixed levels and re-rounding the levels for that grid.
	RefineLSQ
)

// groupErr is sum_i w_i (x_i - value(l_i))^2 (w nil: all ones).
func (g Grid) groupErr(x []float32, w []float64, lv []uint8, s, m float32) float64 {
	var e float64
	for i, v := range x {
		d := float64(v - g.value(lv[i], s, m))
		if w != nil {
			d *= math.Sqrt(w[i])
		}
		e += d * d
	}
	return e
}

// superScales are the super-scales a super grid's group sits under: its
// fitted scale and min are snapped to their codes (zero value: plain grid).
type superScales struct{ d, m float32 }

// snap rounds a fitted scale and min to what the grid stores: float16, or a
// super grid's codes under sup.
func (g Grid) snap(s, m float32, sup superScales) (float32, float32) {
	if !g.Super {
		return kernels.RoundF16(s), kernels.RoundF16(m)
	}
	f := g.Format()
	return kernels.SnapSub(f, sup.d, s, false), kernels.SnapSub(f, sup.m, m, true)
}

// fit returns the weighted least-squares scale (and min when Asym) for
// fixed levels, rounded to what is stored (snap). ok is false when the
// system is singular.
func (g Grid) fit(x []float32, w []float64, lv []uint8, sup superScales) (s, m float32, ok bool) {
	var sw, sl, sll, sx, slx float64
	for i, v := range x {
		wi := 1.0
		if w != nil {
			wi = w[i]
		}
		l := float64(lv[i])
		if !g.Asym {
			l -= float64(g.zero())
		}
		sw += wi
		sl += wi * l
		sll += wi * l * l
		sx += wi * float64(v)
		slx += wi * l * float64(v)
	}
	if !g.Asym {
		if sll == 0 {
			return 0, 0, false
		}
		s, _ := g.snap(float32(slx/sll), 0, sup)
		return s, 0, true
	}
	det := sw*sll - sl*sl
	if det <= 1e-12*sw*sll || det == 0 {
		return 0, 0, false
	}
	d := (sw*slx - sl*sx) / det
	mm := (sll*sx - sl*slx) / det
	s, m = g.snap(float32(d), float32(mm), sup)
	return s, m, true
}

// refineScratch is per-goroutine scratch for refineGroup.
type refineScratch struct {
	tl, bl []uint8
}

func (sc *refineScratch) grow(n int) {
	if cap(sc.tl) < n {
		sc.tl, sc.bl = make([]uint8, n), make([]uint8, n)
	}
	sc.tl, sc.bl = sc.tl[:n], sc.bl[:n]
}

// refineGroup improves one group's grid in place; it reports whether the
// group changed. w (nil: uniform) weights each weight's squared error.
func (g Grid) refineGroup(x []float32, w []float64, lv []uint8, s, m *float32, sup superScales, flags Refine, sc *refineScratch) bool {
	sc.grow(len(x))
	tl, bl := sc.tl, sc.bl
	best := g.groupErr(x, w, lv, *s, *m)
	bs, bm := *s, *m
	copy(bl, lv)
	try := func(cs, cm float32) {
		if cs != cs || cm != cm || cs > 65504 || cs < -65504 || cm > 65504 || cm < -65504 {
			return
		}
		g.levelsFor(tl, x, cs, cm)
		if e := g.groupErr(x, w, tl, cs, cm); e < best {
			best, bs, bm = e, cs, cm
			copy(bl, tl)
		}
	}
	if flags&RefineClip != 0 {
		lo, hi := x[0], x[0]
		var big float32
		for _, v := range x {
			lo, hi = min(lo, v), max(hi, v)
			if abs32(v) > abs32(big) {
				big = v
			}
		}
		nmax := float32(g.maxLevel())
		off := float32(g.zero())
		// Candidate steps around min-max, as make_qkx-style searches do:
		// round with a slightly larger or smaller step, refit by least
		// squares, keep the best.
		for is := -5; is <= 5; is++ {
			if g.Asym {
				if hi == lo {
					break
				}
				iscale := (nmax + 0.2*float32(is)) / (hi - lo)
				for i, v := range x {
					l := float32(math.Round(float64(iscale * (v - lo))))
					tl[i] = uint8(min(max(l, 0), nmax))
				}
			} else {
				if big == 0 {
					break
				}
				inv := -(off + 0.2*float32(is)) / big
				for i, v := range x {
					l := float32(math.Round(float64(v*inv))) + off
					tl[i] = uint8(min(max(l, 0), nmax))
				}
			}
			if cs, cm, ok := g.fit(x, w, tl, sup); ok {
				try(cs, cm)
			}
		}
	}
	if flags&RefineLSQ != 0 {
		for range 8 {
			prev := best
			if cs, cm, ok := g.fit(x, w, bl, sup); ok {
				try(cs, cm)
			}
			if best >= prev {
				break
			}
		}
	}
	if bs == *s && bm == *m {
		return false
	}
	*s, *m = bs, bm
	copy(lv, bl)
	return true
}

// refineRows refines every group of rows [0, q.Rows) of q, which quantizes
// x (the matrix as stored, i.e. W·M), with per-column weights colW (nil:
// uniform; for a transform, the squared row norms of M^-1, so the error is
// measured as it will be after M^-1).
func refineRows(q *Quantized, x []float32, colW []float64, flags Refine) {
	if flags == 0 {
		return
	}
	g := q.Grid
	n := q.Cols / g.Group
	parallelFor(q.Rows, func(r int) {
		var sc refineScratch
		lv := q.RowLevels(r)
		xs := x[r*q.Cols : (r+1)*q.Cols]
		for j := range n {
			var w []float64
			if colW != nil {
				w = colW[j*g.Group : (j+1)*g.Group]
			}
			var m float32
			if q.Mins != nil {
				m = q.Mins[r*n+j]
			}
			var sup superScales
			if g.Super {
				k := (r*q.Cols + j*g.Group) / kernels.SuperBlock
				sup.d = q.Supers[k]
				if q.SuperMins != nil {
					sup.m = q.SuperMins[k]
				}
			}
			if g.refineGroup(xs[j*g.Group:(j+1)*g.Group], w, lv[j*g.Group:(j+1)*g.Group], &q.Scales[r*n+j], &m, sup, flags, &sc) && q.Mins != nil {
				q.Mins[r*n+j] = m
			}
		}
	})
}
