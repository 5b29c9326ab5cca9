package runtime

import (
	"errors"
	"fmt"
	"math"

	"github.com/cafeq/cafeq/kernels"
)

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

// rowRef says where one row of a forward batch belongs: its sequence's cache
// and its position there. A prefill chunk has consecutive positions of one
// cache; a batched decode step has one row per session.
type rowRef struct {
	cache *kvCache
	pos   int
}

// scratch holds every buffer one forward batch of up to rows tokens needs,
// allocated once so the token loop allocates nothing.
type scratch struct {
	rows  int
	ids   []int                    // (rows)
	refs  []rowRef                 // (rows)
	x     []float32                // (rows, d_model) residual stream
	xn    *kernels.ActivationBatch // (rows, d_model) normalized input of attention / FFN
	xt    *kernels.ActivationBatch // (rows, d_model) xn after an input transform M⁻¹
	q     []float32                // (rows, heads*headDim)
	k, v  []float32                // (rows, kvHeads*headDim)
	attn  *kernels.ActivationBatch // (rows, heads*headDim) attention output, input of o
	proj  []float32                // (rows, d_model) output of o / down
	gate  []float32                // (rows, ffn)
	up    []float32                // (rows, ffn)
	act   *kernels.ActivationBatch // (rows, ffn) GELU(gate)*up, input of down
	actT  *kernels.ActivationBatch // (rows, ffn) act after down's input transform
	final *kernels.ActivationBatch // (rows, d_model) final-normed hidden state
	logit []float32                // (logitRows, vocab)

	maxCtx int
	blocks []rowBlock  // (rows) the row blocks of the attention step
	scores [][]float32 // per worker (attnBlockRows*queryGroup*maxCtx) attention scores

	// Preallocated jobs and batch views: dispatching them allocates nothing.
	views map[*kernels.ActivationBatch]*kernels.ActivationBatch
	mm    matmulJob
	tr    transformJob
	at    attentionJob
}

func (e *Engine) newScratch(rows, maxCtx, logitRows int) *scratch {
	c := e.Config
	d, f, qd, kvd := c.HiddenSize, c.IntermediateSize, c.QDim(), c.KVDim()
	sc := &scratch{rows: rows, ids: make([]int, rows), refs: make([]rowRef, rows)}
	sc.x = make([]float32, rows*d)
	sc.xn = kernels.NewActivationBatch(rows, d)
	sc.xt = kernels.NewActivationBatch(rows, d)
	sc.q = make([]float32, rows*qd)
	sc.k = make([]float32, rows*kvd)
	sc.v = make([]float32, rows*kvd)
	sc.attn = kernels.NewActivationBatch(rows, qd)
	sc.proj = make([]float32, rows*d)
	sc.gate = make([]float32, rows*f)
	sc.up = make([]float32, rows*f)
	sc.act = kernels.NewActivationBatch(rows, f)
	sc.actT = kernels.NewActivationBatch(rows, f)
	sc.final = kernels.NewActivationBatch(rows, d)
	sc.logit = make([]float32, logitRows*c.VocabSize)
	threads := e.pool.threads
	sc.maxCtx = maxCtx
	sc.blocks = make([]rowBlock, 0, rows)
	sc.scores = make([][]float32, threads)
	group := c.NumAttentionHeads / c.NumKeyValueHeads
	for i := range sc.scores {
		sc.scores[i] = make([]float32, min(rows, attnBlockRows)*group*maxCtx)
	}
	sc.views = map[*kernels.ActivationBatch]*kernels.ActivationBatch{}
	for _, b := range []*kernels.ActivationBatch{sc.xn, sc.xt, sc.attn, sc.act, sc.actT, sc.final} {
		v := *b
		sc.views[b] = &v
	}
	sc.tr = transformJob{tok: make([]kernels.Activation, threads), blk: make([]kernels.Matrix, threads), part: make([]kernels.Activation, threads)}
	return sc
}

// Session is one sequence: its KV cache, its own scratch for prefill and a
// sampler. A Session is not safe for concurrent use; sessions of one Engine
// are, and their decode steps may be batched together (see batch.go).
type Session struct {
	e       *Engine
	maxCtx  int
	cache   kvCache
	sc      *scratch
	sampler sampler
	logit   []float32 // (vocab) logits of the last position run
	step    stepRequest
}

func (e *Engine) newSession(maxCtx, batch int) *Session {
	c := e.Config
	s := &Session{e: e, maxCtx: maxCtx}
	s.cache = newKVCache(c.NumHiddenLayers, maxCtx, c.KVDim(), e.kvF16)
	e.ensureRope(maxCtx)
	s.sc = e.newScratch(batch, maxCtx, 1)
	s.logit = make([]float32, c.VocabSize)
	s.sampler = newSampler(c.VocabSize)
	s.step.done = make(chan struct{}, 1)
	return s
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

// Pos is the number of tokens in the KV cache.
func (s *Session) Pos() int { return s.cache.pos }

// MaxContext is the KV cache's capacity in tokens.
func (s *Session) MaxContext() int { return s.maxCtx }

// Reset empties the KV cache so the session can start a new sequence.
func (s *Session) Reset() { s.cache.pos = 0 }

// Truncate drops cached tokens beyond n, so a new prompt sharing a prefix with
// the old one reuses its cache.
func (s *Session) Truncate(n int) {
	if n < s.cache.pos {
		s.cache.pos = max(n, 0)
	}
}

// view returns the first n tokens of batch b without allocating.
func (sc *scratch) view(b *kernels.ActivationBatch, n int) *kernels.ActivationBatch {
	return sc.viewRange(b, 0, n)
}

// viewRange returns tokens [lo, hi) of batch b without allocating.
func (sc *scratch) viewRange(b *kernels.ActivationBatch, lo, hi int) *kernels.ActivationBatch {
	v := sc.views[b]
	nb := b.Blocks
	v.N = hi - lo
	v.F32 = b.F32[lo*b.Cols : hi*b.Cols]
	v.Q = b.Q[lo*nb*kernels.ChunkSize : hi*nb*kernels.ChunkSize]
	v.D = b.D[lo*nb : hi*nb]
	v.S = b.S[lo*nb : hi*nb]
	v.DS = b.DS[lo*nb : hi*nb]
	return v
}

func (s *Session) checkIDs(ids []int) error {
	if len(ids) == 0 {
		return fmt.Errorf("runtime: no tokens to run")
	}
	if s.cache.pos+len(ids) > s.maxCtx {
		return fmt.Errorf("runtime: %d tokens exceed the context of %d (already %d)", len(ids), s.maxCtx, s.cache.pos)
	}
	for _, id := range ids {
		if id < 0 || id >= s.e.Config.VocabSize {
			return fmt.Errorf("runtime: token id %d outside the vocabulary of %d", id, s.e.Config.VocabSize)
		}
	}
	return nil
}

// Forward runs ids through the model at the next positions and appends them
// to the KV cache. When onLogits is non-nil it receives the logits of every
// position in order (the slice is reused: copy what you keep); otherwise only
// the last position's logits are computed and returned.
func (s *Session) Forward(ids []int, onLogits func(i int, logits []float32)) ([]float32, error) {
	if err := s.checkIDs(ids); err != nil {
		return nil, err
	}
	sc := s.sc
	vocab := s.e.Config.VocabSize
	for start := 0; start < len(ids); start += sc.rows {
		chunk := ids[start:min(len(ids), start+sc.rows)]
		n := len(chunk)
		for i, id := range chunk {
			sc.ids[i] = id
			sc.refs[i] = rowRef{&s.cache, s.cache.pos + i}
		}
		s.e.forwardRows(sc, n)
		if onLogits != nil {
			if len(sc.logit) < n*vocab {
				sc.logit = make([]float32, sc.rows*vocab) // once, on the first all-positions run
			}
			if _, err := s.e.logits(sc, 0, n); err != nil {
				return nil, err
			}
			for i := 0; i < n; i++ {
				onLogits(start+i, sc.logit[i*vocab:(i+1)*vocab])
			}
			if start+n == len(ids) {
				copy(s.logit, sc.logit[(n-1)*vocab:n*vocab])
			}
		} else if start+n == len(ids) {
			if _, err := s.e.logits(sc, n-1, n); err != nil {
				return nil, err
			}
			copy(s.logit, sc.logit[:vocab])
		}
	}
	return s.logit, nil
}

// Step runs one token (decode) and returns its logits. When several sessions
// of the engine step at once, their steps are batched into one pass.
func (s *Session) Step(id int) ([]float32, error) {
	if err := s.checkIDs([]int{id}); err != nil {
		return nil, err
	}
	return s.e.batchStep(s, id)
}

// forwardRows runs the n rows of sc (ids and refs filled in) through every
// layer, appends their keys, values and ids to their caches, and leaves the
// final normalized hidden states in sc.final.
func (e *Engine) forwardRows(sc *scratch, n int) {
	c := e.Config
	d, f, qd, kvd := c.HiddenSize, c.IntermediateSize, c.QDim(), c.KVDim()
	eps := float32(c.RMSNormEps)
	embedScale := float32(math.Sqrt(float64(d))) // Gemma scales embeddings by sqrt(d_model)
	for i := 0; i < n; i++ {
		row := sc.x[i*d : (i+1)*d]
		if err := e.w.embed.Row(sc.ids[i], row); err != nil {
			panic(err) // ids were range-checked and the matrix validated at load
		}
		kernels.Scale(embedScale, row)
		r := sc.refs[i]
		r.cache.tokens[r.pos] = sc.ids[i]
	}
	xn := sc.view(sc.xn, n)
	for l := range e.w.layers {
		L := &e.w.layers[l]
		// Attention block.
		for i := 0; i < n; i++ {
			kernels.RMSNorm(xn.F32[i*d:(i+1)*d], sc.x[i*d:(i+1)*d], L.attnNorm, eps)
		}
		e.quantized(xn)
		in := e.prepare(sc, L.q.transform, xn, sc.xt)
		q, k, v := matmulPart{L.q, sc.q[:n*qd]}, matmulPart{L.k, sc.k[:n*kvd]}, matmulPart{L.v, sc.v[:n*kvd]}
		if sameTransform(L.q, L.v) {
			e.matmuls(sc, in, q, k, v)
		} else { // CafeQ folds V's transform into V/O instead
			e.matmuls(sc, in, q, k)
			e.matmuls(sc, e.prepare(sc, L.v.transform, xn, sc.xt), v)
		}
		e.attention(sc, l, n)
		attn := e.prepare(sc, L.o.transform, e.quantized(sc.view(sc.attn, n)), sc.xt)
		e.matmul(sc, L.o, sc.proj[:n*d], attn)
		for i := 0; i < n; i++ {
			p := sc.proj[i*d : (i+1)*d]
			kernels.RMSNorm(p, p, L.postAttnNorm, eps)
			kernels.Add(sc.x[i*d:(i+1)*d], p)
		}
		// Feed-forward block: GeGLU with tanh GELU.
		for i := 0; i < n; i++ {
			kernels.RMSNorm(xn.F32[i*d:(i+1)*d], sc.x[i*d:(i+1)*d], L.ffnNorm, eps)
		}
		e.quantized(xn)
		in = e.prepare(sc, L.gate.transform, xn, sc.xt)
		e.matmuls(sc, in, matmulPart{L.gate, sc.gate[:n*f]}, matmulPart{L.up, sc.up[:n*f]})
		act := sc.view(sc.act, n)
		copy(act.F32, sc.gate[:n*f])
		kernels.GELUMul(act.F32, sc.up[:n*f])
		in = e.prepare(sc, L.down.transform, e.quantized(act), sc.actT)
		e.matmul(sc, L.down, sc.proj[:n*d], in)
		for i := 0; i < n; i++ {
			p := sc.proj[i*d : (i+1)*d]
			kernels.RMSNorm(p, p, L.postFFNNorm, eps)
			kernels.Add(sc.x[i*d:(i+1)*d], p)
		}
	}
	final := sc.view(sc.final, n)
	for i := 0; i < n; i++ {
		kernels.RMSNorm(final.F32[i*d:(i+1)*d], sc.x[i*d:(i+1)*d], e.w.finalNorm, eps)
	}
	e.quantized(final)
	for i := 0; i < n; i++ {
		sc.refs[i].cache.pos = max(sc.refs[i].cache.pos, sc.refs[i].pos+1)
	}
}

// logits computes the soft-capped logits of rows [lo, hi) into
// sc.logit[(i-lo)*vocab:]: one matrix product, so the large output matrix is
// read once for all of them. A row with a non-finite logit is an error
// (checked before the soft-cap, which would turn ±Inf into ±cap); the other
// rows are still valid, so bad reports which.
func (e *Engine) logits(sc *scratch, lo, hi int) (bad []bool, err error) {
	vocab := e.Config.VocabSize
	rows := sc.viewRange(sc.final, lo, hi)
	out := sc.logit[:(hi-lo)*vocab]
	e.matmul(sc, e.w.output, out, rows)
	for i := 0; i < hi-lo; i++ {
		if !allFinite(out[i*vocab : (i+1)*vocab]) {
			if bad == nil {
				bad = make([]bool, hi-lo)
				err = ErrNonFinite
			}
			bad[i] = true
		}
	}
	if cap := float32(e.Config.FinalLogitSoftcapping); cap > 0 {
		kernels.SoftCap(out, cap) // final logit soft-cap
	}
	return bad, err
}

// ErrNonFinite is returned instead of logits that hold a NaN or an infinity:
// corrupt weights (a NaN in a norm or a scale) or activations that overflow.
// Nothing is ever sampled from such logits.
var ErrNonFinite = errors.New("runtime: the model computed a non-finite logit (NaN or infinity); the weights may be corrupt")

// allFinite reports whether x holds neither NaN nor ±Inf (v-v is NaN for both).
func allFinite(x []float32) bool {
	var acc float32
	for _, v := range x {
		acc += v - v
	}
	return acc == 0
}

// prepare applies a matrix's input transform (if any) to the normalized
// activation and quantizes the result when the weights read 8-bit activations.
// in must already be quantized when needQ8 is set.
func (e *Engine) prepare(sc *scratch, t *blockTransform, in, out *kernels.ActivationBatch) *kernels.ActivationBatch {
	if t == nil || e.skipTransforms {
		return in
	}
	o := sc.view(out, in.N)
	sc.tr.t, sc.tr.src, sc.tr.dst = t, in, o.F32
	e.pool.parallel(&sc.tr, in.N*in.Cols, t.block)
	return e.quantized(o)
}

// quantized quantizes a freshly written activation batch when some weights
// read the 8-bit form, and returns it.
func (e *Engine) quantized(b *kernels.ActivationBatch) *kernels.ActivationBatch {
	if e.needQ8 {
		b.Quantize()
	}
	return b
}

// matmul computes dst = W·x for every token of in, rows split across threads.
func (e *Engine) matmul(sc *scratch, l *linear, dst []float32, in *kernels.ActivationBatch) {
	e.matmuls(sc, in, matmulPart{l, dst})
}

// matmulPart is one matrix of a matmuls call and where its products go.
type matmulPart struct {
	l   *linear
	dst []float32
}

// matmuls runs up to three matrices that read the same input as one job over
// their stacked rows: one dispatch and one wait instead of one per matrix,
// and the threads' shares balance over all of them.
func (e *Engine) matmuls(sc *scratch, in *kernels.ActivationBatch, parts ...matmulPart) {
	sc.mm = matmulJob{in: in}
	rows := 0
	for i, p := range parts {
		sc.mm.parts[i] = p
		rows += p.l.Rows
	}
	sc.mm.n = len(parts)
	if in.N == 1 {
		sc.mm.one = in.Token(0)
	}
	e.pool.parallel(&sc.mm, rows, 16)
}

type matmulJob struct {
	parts [3]matmulPart
	n     int
	in    *kernels.ActivationBatch
	one   kernels.Activation // in's single token, when decoding
}

// run computes stacked rows [lo, hi): each part's share of them.
func (j *matmulJob) run(_, lo, hi int) {
	base := 0
	for _, p := range j.parts[:j.n] {
		m := &p.l.Matrix
		r0, r1 := max(lo-base, 0), min(hi-base, m.Rows)
		base += m.Rows
		if r0 >= r1 {
			continue
		}
		var err error
		if j.in.N == 1 {
			err = m.MulVec(p.dst, &j.one, r0, r1)
		} else {
			err = m.MulMat(p.dst, j.in, r0, r1)
		}
		if err != nil {
			panic(err) // shapes are fixed at load; an error here is a bug
		}
	}
}

type transformJob struct {
	t    *blockTransform
	src  *kernels.ActivationBatch
	dst  []float32
	tok  []kernels.Activation // per worker: the token being transformed
	blk  []kernels.Matrix     // per worker scratch for one block of M⁻¹
	part []kernels.Activation // per worker scratch for one block of x
}

// run transforms rows [lo, hi) of the flattened (tokens × width) batch.
func (j *transformJob) run(w, lo, hi int) {
	width := j.src.Cols
	for r := lo; r < hi; {
		tok := r / width
		end := min(hi, (tok+1)*width)
		j.tok[w] = j.src.Token(tok)
		j.t.apply(j.dst[tok*width:(tok+1)*width], &j.tok[w], r-tok*width, end-tok*width, &j.blk[w], &j.part[w])
		r = end
	}
}

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

type attentionJob struct {
	e     *Engine
	sc    *scratch
	layer int
	out   []float32
}

// attnKeyTile is how many cached keys (or values) one pass takes for all the
// queries of a unit: 64 keys of head_dim 256 are 64 KiB, which stay in L2
// while every query of the block meets them.
const attnKeyTile = 64

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
