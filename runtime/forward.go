package runtime

import (
	"fmt"
	"math"

	"github.com/cafeq/cafeq/kernels"
)

// Session is one conversation's state: its KV cache and every scratch buffer
// the forward pass needs, allocated once so the token loop allocates nothing.
// A Session is not safe for concurrent use; sessions of one Engine are.
type Session struct {
	e      *Engine
	maxCtx int
	pos    int   // tokens already in the KV cache
	tokens []int // (maxCtx) the ids in the KV cache

	kCache, vCache [][]float32 // per layer (maxCtx, kvDim)
	ropeCos        []float32   // (maxCtx, headDim/2)
	ropeSin        []float32   // (maxCtx, headDim/2)

	batch int                      // most tokens one forward chunk holds
	x     []float32                // (batch, d_model) residual stream
	xn    *kernels.ActivationBatch // (batch, d_model) normalized input of attention / FFN
	xt    *kernels.ActivationBatch // (batch, d_model) xn after an input transform M⁻¹
	q     []float32                // (batch, heads*headDim)
	k, v  []float32                // (batch, kvHeads*headDim)
	attn  *kernels.ActivationBatch // (batch, heads*headDim) attention output, input of o
	proj  []float32                // (batch, d_model) output of o / down
	gate  []float32                // (batch, ffn)
	up    []float32                // (batch, ffn)
	act   *kernels.ActivationBatch // (batch, ffn) GELU(gate)*up, input of down
	actT  *kernels.ActivationBatch // (batch, ffn) act after down's input transform
	final *kernels.ActivationBatch // (batch, d_model) final-normed hidden state
	logit []float32                // (vocab) logits of one position

	scores [][]float32 // per worker (maxCtx) attention scores

	// Preallocated jobs and batch views: dispatching them allocates nothing.
	views   map[*kernels.ActivationBatch]*kernels.ActivationBatch
	mm      matmulJob
	tr      transformJob
	at      attentionJob
	sampler sampler
}

func (e *Engine) newSession(maxCtx, batch int) *Session {
	c := e.Config
	d, f, qd, kvd, hd := c.HiddenSize, c.IntermediateSize, c.QDim(), c.KVDim(), c.HeadDim
	s := &Session{e: e, maxCtx: maxCtx, batch: batch, tokens: make([]int, maxCtx)}
	s.kCache = make([][]float32, c.NumHiddenLayers)
	s.vCache = make([][]float32, c.NumHiddenLayers)
	for l := range s.kCache {
		s.kCache[l] = make([]float32, maxCtx*kvd)
		s.vCache[l] = make([]float32, maxCtx*kvd)
	}
	// Rotary angles pos * theta^(-2i/headDim), in float64 for accuracy.
	half := hd / 2
	s.ropeCos = make([]float32, maxCtx*half)
	s.ropeSin = make([]float32, maxCtx*half)
	for i := 0; i < half; i++ {
		freq := math.Pow(c.RopeTheta, -float64(2*i)/float64(hd))
		for p := 0; p < maxCtx; p++ {
			sin, cos := math.Sincos(float64(p) * freq)
			s.ropeCos[p*half+i] = float32(cos)
			s.ropeSin[p*half+i] = float32(sin)
		}
	}
	s.x = make([]float32, batch*d)
	s.xn = kernels.NewActivationBatch(batch, d)
	s.xt = kernels.NewActivationBatch(batch, d)
	s.q = make([]float32, batch*qd)
	s.k = make([]float32, batch*kvd)
	s.v = make([]float32, batch*kvd)
	s.attn = kernels.NewActivationBatch(batch, qd)
	s.proj = make([]float32, batch*d)
	s.gate = make([]float32, batch*f)
	s.up = make([]float32, batch*f)
	s.act = kernels.NewActivationBatch(batch, f)
	s.actT = kernels.NewActivationBatch(batch, f)
	s.final = kernels.NewActivationBatch(batch, d)
	s.logit = make([]float32, c.VocabSize)
	s.scores = make([][]float32, e.pool.threads)
	for i := range s.scores {
		s.scores[i] = make([]float32, maxCtx)
	}
	s.views = map[*kernels.ActivationBatch]*kernels.ActivationBatch{}
	for _, b := range []*kernels.ActivationBatch{s.xn, s.xt, s.attn, s.act, s.actT, s.final} {
		v := *b
		s.views[b] = &v
	}
	s.sampler = newSampler(c.VocabSize)
	threads := e.pool.threads
	s.tr = transformJob{tok: make([]kernels.Activation, threads), blk: make([]kernels.Matrix, threads), part: make([]kernels.Activation, threads)}
	return s
}

// Pos is the number of tokens in the KV cache.
func (s *Session) Pos() int { return s.pos }

// MaxContext is the KV cache's capacity in tokens.
func (s *Session) MaxContext() int { return s.maxCtx }

// Reset empties the KV cache so the session can start a new sequence.
func (s *Session) Reset() { s.pos = 0 }

// Truncate drops cached tokens beyond n, so a new prompt sharing a prefix with
// the old one reuses its cache.
func (s *Session) Truncate(n int) {
	if n < s.pos {
		s.pos = max(n, 0)
	}
}

// view returns the first n tokens of batch b without allocating.
func (s *Session) view(b *kernels.ActivationBatch, n int) *kernels.ActivationBatch {
	return s.viewRange(b, 0, n)
}

// viewRange returns tokens [lo, hi) of batch b without allocating.
func (s *Session) viewRange(b *kernels.ActivationBatch, lo, hi int) *kernels.ActivationBatch {
	v := s.views[b]
	nb := b.Blocks
	v.N = hi - lo
	v.F32 = b.F32[lo*b.Cols : hi*b.Cols]
	v.Q = b.Q[lo*nb*kernels.ChunkSize : hi*nb*kernels.ChunkSize]
	v.D = b.D[lo*nb : hi*nb]
	v.S = b.S[lo*nb : hi*nb]
	return v
}

// Forward runs ids through the model at the next positions and appends them
// to the KV cache. When onLogits is non-nil it receives the logits of every
// position in order (the slice is reused: copy what you keep); otherwise only
// the last position's logits are computed and returned.
func (s *Session) Forward(ids []int, onLogits func(i int, logits []float32)) ([]float32, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("runtime: no tokens to run")
	}
	if s.pos+len(ids) > s.maxCtx {
		return nil, fmt.Errorf("runtime: %d tokens exceed the context of %d (already %d)", len(ids), s.maxCtx, s.pos)
	}
	for _, id := range ids {
		if id < 0 || id >= s.e.Config.VocabSize {
			return nil, fmt.Errorf("runtime: token id %d outside the vocabulary of %d", id, s.e.Config.VocabSize)
		}
	}
	copy(s.tokens[s.pos:], ids)
	for start := 0; start < len(ids); start += s.batch {
		chunk := ids[start:min(len(ids), start+s.batch)]
		s.forwardChunk(chunk)
		n := len(chunk)
		if onLogits != nil {
			for i := 0; i < n; i++ {
				s.logitsOf(i)
				onLogits(start+i, s.logit)
			}
		} else if start+n == len(ids) {
			s.logitsOf(n - 1)
		}
	}
	return s.logit, nil
}

// Step runs one token (decode) and returns its logits.
func (s *Session) Step(id int) ([]float32, error) {
	ids := [1]int{id}
	return s.Forward(ids[:], nil)
}

// forwardChunk runs n <= batch tokens through every layer, leaving the final
// normalized hidden states in s.final.
func (s *Session) forwardChunk(ids []int) {
	e, c := s.e, s.e.Config
	n := len(ids)
	d, f, qd, kvd := c.HiddenSize, c.IntermediateSize, c.QDim(), c.KVDim()
	eps := float32(c.RMSNormEps)
	embedScale := float32(math.Sqrt(float64(d))) // Gemma scales embeddings by sqrt(d_model)
	for i, id := range ids {
		row := s.x[i*d : (i+1)*d]
		if err := e.w.embed.Row(id, row); err != nil {
			panic(err) // ids were range-checked and the matrix validated at load
		}
		kernels.Scale(embedScale, row)
	}
	xn := s.view(s.xn, n)
	for l := range e.w.layers {
		L := &e.w.layers[l]
		// Attention block.
		for i := 0; i < n; i++ {
			kernels.RMSNorm(xn.F32[i*d:(i+1)*d], s.x[i*d:(i+1)*d], L.attnNorm, eps)
		}
		s.quantized(xn)
		in := s.prepare(L.q.transform, xn, s.xt)
		s.matmul(L.q, s.q[:n*qd], in)
		s.matmul(L.k, s.k[:n*kvd], in)
		if !sameTransform(L.q, L.v) { // CafeQ folds V's transform into V/O instead
			in = s.prepare(L.v.transform, xn, s.xt)
		}
		s.matmul(L.v, s.v[:n*kvd], in)
		s.attention(l, n)
		attn := s.prepare(L.o.transform, s.quantized(s.view(s.attn, n)), s.xt)
		s.matmul(L.o, s.proj[:n*d], attn)
		for i := 0; i < n; i++ {
			p := s.proj[i*d : (i+1)*d]
			kernels.RMSNorm(p, p, L.postAttnNorm, eps)
			kernels.Add(s.x[i*d:(i+1)*d], p)
		}
		// Feed-forward block: GeGLU with tanh GELU.
		for i := 0; i < n; i++ {
			kernels.RMSNorm(xn.F32[i*d:(i+1)*d], s.x[i*d:(i+1)*d], L.ffnNorm, eps)
		}
		s.quantized(xn)
		in = s.prepare(L.gate.transform, xn, s.xt)
		s.matmul(L.gate, s.gate[:n*f], in)
		s.matmul(L.up, s.up[:n*f], in)
		act := s.view(s.act, n)
		copy(act.F32, s.gate[:n*f])
		kernels.GELUMul(act.F32, s.up[:n*f])
		in = s.prepare(L.down.transform, s.quantized(act), s.actT)
		s.matmul(L.down, s.proj[:n*d], in)
		for i := 0; i < n; i++ {
			p := s.proj[i*d : (i+1)*d]
			kernels.RMSNorm(p, p, L.postFFNNorm, eps)
			kernels.Add(s.x[i*d:(i+1)*d], p)
		}
	}
	final := s.view(s.final, n)
	for i := 0; i < n; i++ {
		kernels.RMSNorm(final.F32[i*d:(i+1)*d], s.x[i*d:(i+1)*d], e.w.finalNorm, eps)
	}
	s.pos += n
}

// logitsOf computes the soft-capped logits of chunk position i into s.logit.
func (s *Session) logitsOf(i int) {
	c := s.e.Config
	one := s.viewRange(s.final, i, i+1)
	if s.e.needQ8 {
		one.Quantize()
	}
	s.matmul(s.e.w.output, s.logit, one)
	if cap := float32(c.FinalLogitSoftcapping); cap > 0 {
		for j, v := range s.logit {
			s.logit[j] = cap * kernels.Tanh(v/cap)
		}
	}
}

// prepare applies a matrix's input transform (if any) to the normalized
// activation and quantizes the result when the weights read 8-bit activations.
// in must already be quantized when needQ8 is set.
func (s *Session) prepare(t *blockTransform, in, scratch *kernels.ActivationBatch) *kernels.ActivationBatch {
	if t == nil || s.e.skipTransforms {
		return in
	}
	out := s.view(scratch, in.N)
	s.tr.t, s.tr.src, s.tr.dst = t, in, out.F32
	s.e.pool.parallel(&s.tr, in.N*in.Cols, t.block)
	if s.e.needQ8 {
		out.Quantize()
	}
	return out
}

// quantized quantizes a freshly written activation batch when some weights
// read the 8-bit form, and returns it.
func (s *Session) quantized(b *kernels.ActivationBatch) *kernels.ActivationBatch {
	if s.e.needQ8 {
		b.Quantize()
	}
	return b
}

// matmul computes dst = W·x for every token of in, rows split across threads.
func (s *Session) matmul(l *linear, dst []float32, in *kernels.ActivationBatch) {
	s.mm = matmulJob{m: &l.Matrix, dst: dst, in: in}
	if in.N == 1 {
		s.mm.one = in.Token(0)
	}
	s.e.pool.parallel(&s.mm, l.Rows, 16)
}

type matmulJob struct {
	m   *kernels.Matrix
	dst []float32
	in  *kernels.ActivationBatch
	one kernels.Activation // in's single token, when decoding
}

func (j *matmulJob) run(_, lo, hi int) {
	var err error
	if j.in.N == 1 {
		err = j.m.MulVec(j.dst, &j.one, lo, hi)
	} else {
		err = j.m.MulMat(j.dst, j.in, lo, hi)
	}
	if err != nil {
		panic(err) // shapes are fixed at load; an error here is a bug
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

// attention applies RoPE to this chunk's queries and keys, stores keys and
// values in the cache, and computes every (token, head) output into s.attn.
func (s *Session) attention(l, n int) {
	c := s.e.Config
	hd, half, kvd := c.HeadDim, c.HeadDim/2, c.KVDim()
	for i := 0; i < n; i++ {
		p := s.pos + i
		cos, sin := s.ropeCos[p*half:(p+1)*half], s.ropeSin[p*half:(p+1)*half]
		for h := 0; h < c.NumAttentionHeads; h++ {
			kernels.RoPE(s.q[i*c.QDim()+h*hd:i*c.QDim()+(h+1)*hd], cos, sin)
		}
		for h := 0; h < c.NumKeyValueHeads; h++ {
			kernels.RoPE(s.k[i*kvd+h*hd:i*kvd+(h+1)*hd], cos, sin)
		}
	}
	copy(s.kCache[l][s.pos*kvd:], s.k[:n*kvd])
	copy(s.vCache[l][s.pos*kvd:], s.v[:n*kvd])
	s.at = attentionJob{s: s, layer: l, out: s.attn.F32}
	s.e.pool.parallel(&s.at, n*c.NumAttentionHeads, 1)
}

type attentionJob struct {
	s     *Session
	layer int
	out   []float32
}

// run computes attention for (token, head) pairs lo..hi-1 of the chunk.
func (j *attentionJob) run(worker, lo, hi int) {
	s, c := j.s, j.s.e.Config
	hd, qd, kvd := c.HeadDim, c.QDim(), c.KVDim()
	group := c.NumAttentionHeads / c.NumKeyValueHeads
	scale := float32(1 / math.Sqrt(c.QueryPreAttnScalar))
	cap := float32(c.AttnLogitSoftcapping)
	kc, vc := s.kCache[j.layer], s.vCache[j.layer]
	for t := lo; t < hi; t++ {
		i, h := t/c.NumAttentionHeads, t%c.NumAttentionHeads
		p := s.pos + i
		start := 0
		if c.IsSlidingLayer(j.layer) {
			start = max(0, p-c.SlidingWindow+1) // key j is visible when p - j < window
		}
		q := s.q[i*qd+h*hd : i*qd+(h+1)*hd]
		kvOff := (h / group) * hd
		scores := s.scores[worker][:p+1-start]
		for k := range scores {
			pos := start + k
			sc := kernels.Dot(q, kc[pos*kvd+kvOff:pos*kvd+kvOff+hd]) * scale
			if cap > 0 {
				sc = cap * kernels.Tanh(sc/cap) // attention logit soft-cap
			}
			scores[k] = sc
		}
		kernels.Softmax(scores)
		out := j.out[i*qd+h*hd : i*qd+(h+1)*hd]
		clear(out)
		for k, w := range scores {
			pos := start + k
			kernels.Axpy(w, vc[pos*kvd+kvOff:pos*kvd+kvOff+hd], out)
		}
	}
}
