package runtime

import (
	"fmt"

	"github.com/cafeq/cafeq/kernels"
)

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
