package runtime

import (
	"math"

	"github.com/cafeq/cafeq/kernels"
)

// attnBlockRows is how many consecutive rows of one sequence go through
// their keys and values together. Each cached key and value is then read
// once per block and KV head, instead of once per row and query head: at
// depth the cache no longer fits in cache memory, and prefill re-reading it
// for every row was memory-bound (2048 tokens of prefill on the 2B shape
// spent half their time there).
const attnBlockRows = 16

// rowBlock is rows lo..hi-1 of a forward batch: consecutive positions of one
// sequence.
type rowBlock struct{ lo, hi int }

// attention applies RoPE to the rows' queries and keys, stores keys and
// values in their caches, and computes every (row, head) output into sc.attn.
func (e *Engine) attention(sc *scratch, l, n int) {
	c := e.Config
	hd, half, qd, kvd := c.HeadDim, c.HeadDim/2, c.QDim(), c.KVDim()
	ropeCos, ropeSin := e.ropeCos, e.ropeSin
	sc.blocks = sc.blocks[:0]
	for i := 0; i < n; i++ {
		r := sc.refs[i]
		cos, sin := ropeCos[r.pos*half:(r.pos+1)*half], ropeSin[r.pos*half:(r.pos+1)*half]
		for h := 0; h < c.NumAttentionHeads; h++ {
			kernels.RoPE(sc.q[i*qd+h*hd:i*qd+(h+1)*hd], cos, sin)
		}
		for h := 0; h < c.NumKeyValueHeads; h++ {
			k, v := sc.k[i*kvd+h*hd:i*kvd+(h+1)*hd], sc.v[i*kvd+h*hd:i*kvd+(h+1)*hd]
			kernels.RoPE(k, cos, sin)
			r.cache.store(l, h, r.pos, k, v)
		}
		if b := len(sc.blocks) - 1; b >= 0 && i-sc.blocks[b].lo < attnBlockRows &&
			sc.refs[i-1].cache == r.cache && sc.refs[i-1].pos+1 == r.pos {
			sc.blocks[b].hi = i + 1
		} else {
			sc.blocks = append(sc.blocks, rowBlock{i, i + 1})
		}
	}
	sc.at = attentionJob{e: e, sc: sc, layer: l, out: sc.attn.F32}
	e.pool.parallel(&sc.at, len(sc.blocks)*c.NumKeyValueHeads, 1)
}

// attnKeyTile is how many cached keys (or values) one pass takes for all the
// queries of a unit: 64 keys of head_dim 256 are 64 KiB, which stay in L2
// while every query of the block meets them.
const attnKeyTile = 64

type attentionJob struct {
	e     *Engine
	sc    *scratch
	layer int
	out   []float32
}

// run computes attention for units lo..hi-1; unit u is row block
// u / kvHeads with the query heads that share KV head u % kvHeads.
func (j *attentionJob) run(worker, lo, hi int) {
	sc, c := j.sc, j.e.Config
	hd, qd := c.HeadDim, c.QDim()
	group := c.NumAttentionHeads / c.NumKeyValueHeads
	scale := float32(1 / math.Sqrt(c.QueryPreAttnScalar))
	cap := float32(c.AttnLogitSoftcapping)
	// from is the first key a row at position p sees (it sees from(p)..p).
	from := func(p int) int {
		if c.IsSlidingLayer(j.layer) {
			return max(0, p-c.SlidingWindow+1) // key k is visible when p - k < window
		}
		return 0
	}
	for u := lo; u < hi; u++ {
		b, g := sc.blocks[u/c.NumKeyValueHeads], u%c.NumKeyValueHeads
		first, last := sc.refs[b.lo], sc.refs[b.hi-1]
		cache := first.cache
		// The block's rows are consecutive, so together they see keys
		// k0..last.pos. Query n = (i-b.lo)*group + hh (row i, query head
		// g*group+hh) keeps its scores at scores[n*width+k-k0].
		k0 := from(first.pos)
		width := last.pos + 1 - k0
		nq := (b.hi - b.lo) * group
		scores := sc.scores[worker][:nq*width]
		query := func(n int) (q, out []float32, kFrom, kTo int) {
			i, h := b.lo+n/group, g*group+n%group
			p := sc.refs[i].pos
			return sc.q[i*qd+h*hd : i*qd+(h+1)*hd], j.out[i*qd+h*hd : i*qd+(h+1)*hd], from(p), p + 1
		}
		for t0 := k0; t0 <= last.pos; t0 += attnKeyTile {
			t1 := min(t0+attnKeyTile, last.pos+1)
			for n := 0; n < nq; n++ {
				q, _, kFrom, kTo := query(n)
				if lo, hi := max(t0, kFrom), min(t1, kTo); lo < hi {
					cache.scores(j.layer, g, scores[n*width+lo-k0:n*width+hi-k0], q, lo)
				}
			}
		}
		for n := 0; n < nq; n++ {
			_, out, kFrom, kTo := query(n)
			row := scores[n*width+kFrom-k0 : n*width+kTo-k0]
			kernels.Scale(scale, row)
			if cap > 0 {
				kernels.SoftCap(row, cap) // attention logit soft-cap
			}
			kernels.Softmax(row)
			clear(out)
		}
		for t0 := k0; t0 <= last.pos; t0 += attnKeyTile {
			t1 := min(t0+attnKeyTile, last.pos+1)
			for n := 0; n < nq; n++ {
				_, out, kFrom, kTo := query(n)
				if lo, hi := max(t0, kFrom), min(t1, kTo); lo < hi {
					cache.addValues(j.layer, g, out, scores[n*width+lo-k0:n*width+hi-k0], lo)
				}
			}
		}
	}
}

// ensureRope makes the rotary tables cover n positions. Tables only grow, and
// a grown table is a new slice, so sessions reading the old one are unaffected.
func (e *Engine) ensureRope(n int) {
	e.ropeMu.Lock()
	defer e.ropeMu.Unlock()
	half := e.Config.HeadDim / 2
	if len(e.ropeCos) >= n*half {
		return
	}
	cos, sin := make([]float32, n*half), make([]float32, n*half)
	// Rotary angles pos * theta^(-2i/headDim), in float64 for accuracy.
	for i := 0; i < half; i++ {
		freq := math.Pow(e.Config.RopeTheta, -float64(2*i)/float64(e.Config.HeadDim))
		for p := 0; p < n; p++ {
			s, c := math.Sincos(float64(p) * freq)
			cos[p*half+i], sin[p*half+i] = float32(c), float32(s)
		}
	}
	e.ropeCos, e.ropeSin = cos, sin
}
