package runtime

import "github.com/cafeq/cafeq/kernels"

// kvCache is one sequence's keys and values for every layer, with the ids
// they came from.
type kvCache struct {
	// k, v are per layer (kvHeads, maxCtx, headDim): one head's keys are
	// contiguous over positions, so attention streams them in order. (With
	// (maxCtx, kvDim), every key of a head sat in its own 4 KiB page on the
	// 2B shape, and decode at depth 2048 waited on a page walk per key.)
	// An f16 cache (Options.KVF16) keeps k16, v16 instead, in the same
	// layout, and leaves k, v nil.
	k, v     [][]float32
	k16, v16 [][]uint16
	tokens   []int // (maxCtx) the ids in the cache
	pos      int   // tokens in the cache
}

func newKVCache(layers, maxCtx, kvDim int, f16 bool) kvCache {
	c := kvCache{tokens: make([]int, maxCtx)}
	for range layers {
		if f16 {
			c.k16 = append(c.k16, make([]uint16, maxCtx*kvDim))
			c.v16 = append(c.v16, make([]uint16, maxCtx*kvDim))
		} else {
			c.k = append(c.k, make([]float32, maxCtx*kvDim))
			c.v = append(c.v, make([]float32, maxCtx*kvDim))
		}
	}
	return c
}

// capacity is the most tokens the cache holds (its maxCtx).
func (c *kvCache) capacity() int { return len(c.tokens) }

// at is where position pos of KV head g starts in a layer's keys or values.
func (c *kvCache) at(g, pos, headDim int) int { return (g*c.capacity() + pos) * headDim }

// store writes the key and value of KV head g at position pos of layer l.
func (c *kvCache) store(l, g, pos int, k, v []float32) {
	hd, at := len(k), c.at(g, pos, len(k))
	if c.k16 != nil {
		kernels.ToF16(c.k16[l][at:at+hd], k)
		kernels.ToF16(c.v16[l][at:at+hd], v)
		return
	}
	copy(c.k[l][at:at+hd], k)
	copy(c.v[l][at:at+hd], v)
}

// scores computes dst[i] = q · key(lo+i) over KV head g of layer l.
func (c *kvCache) scores(l, g int, dst, q []float32, lo int) {
	hd, at := len(q), c.at(g, lo, len(q))
	if c.k16 != nil {
		kernels.DotRowsF16(dst, c.k16[l][at:at+len(dst)*hd], q)
		return
	}
	kernels.DotRows(dst, c.k[l][at:at+len(dst)*hd], q)
}

// addValues computes out += sum_i alpha[i] * value(lo+i) over KV head g of
// layer l.
func (c *kvCache) addValues(l, g int, out, alpha []float32, lo int) {
	hd, at := len(out), c.at(g, lo, len(out))
	if c.v16 != nil {
		kernels.AxpyRowsF16(out, alpha, c.v16[l][at:at+len(alpha)*hd])
		return
	}
	kernels.AxpyRows(out, alpha, c.v[l][at:at+len(alpha)*hd])
}
