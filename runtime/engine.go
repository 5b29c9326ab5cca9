// Package runtime runs Gemma 2 models on CPUs: weights loading, the forward
// pass with a KV cache, batched prefill, sampling and the generation loop.
package runtime

import (
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/cafeq/cafeq/model"
	"github.com/cafeq/cafeq/model/tokenizer"
)

// Engine is a loaded model: configuration, weights and a worker pool. One
// Engine serves any number of Sessions, which share its weights.
type Engine struct {
	Config    model.Config
	Tokenizer *tokenizer.Tokenizer
	w         *weights
	pool      *workerPool
	needQ8    bool // some matrix reads 8-bit activations
	kvF16     bool // sessions keep their KV caches in f16
	batch     int  // most tokens per prefill chunk
	closer    io.Closer

	skipTransforms bool // bench only: time decoding without the M⁻¹ step

	ropeMu           sync.Mutex
	ropeCos, ropeSin []float32 // (positions, headDim/2) rotary tables, grown by ensureRope
	stepper          stepper   // batches concurrent decode steps

	vocabOnce sync.Once
	vocab     *tokenBytes // each token's bytes, for constrained decoding
}

// Options tunes loading.
type Options struct {
	Threads int // worker threads; 0: all cores
	Batch   int // most tokens per prefill chunk; 0: 64
	// KVF16 keeps the KV caches in f16, as llama.cpp does by default: half
	// the memory and half the bytes attention reads at depth, for keys and
	// values rounded to 11 significant bits. The default, f32, is what the
	// reference checks (golden logits) use.
	KVF16 bool
	// NoVerify skips the checksums of a .cq file's tensors and uses the
	// memory-mapped file in place instead of copying it into private memory:
	// a faster start (see docs/CQ-FILE.md for the cost measured), but a
	// corrupt tensor then runs silently, and the file must not be changed
	// in place (truncated, overwritten) while the engine uses it. By default
	// every tensor is verified on load, and the file is not read after it.
	NoVerify bool
}

// Load opens a Hugging Face checkpoint directory or a .cq file.
func Load(path string, opts Options) (*Engine, error) {
	isFile, err := model.IsCQFile(path)
	if err != nil {
		return nil, err
	}
	if isFile {
		return loadCQ(path, opts)
	}
	ck, err := model.OpenCheckpoint(path)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		ck.Close()
		return nil, err
	}
	w, err := loadWeights(ck.Config, checkpointSource{ck: ck, private: !opts.NoVerify})
	if err != nil {
		ck.Close()
		return nil, fmt.Errorf("%w (in %s)", err, filepath.Base(path))
	}
	if !opts.NoVerify {
		ck.Close() // nothing reads the files any more
		return newEngine(ck.Config, tok, w, nil, opts)
	}
	return newEngine(ck.Config, tok, w, ck, opts)
}

func newEngine(cfg model.Config, tok *tokenizer.Tokenizer, w *weights, closer io.Closer, opts Options) (*Engine, error) {
	if tok.VocabSize() > cfg.VocabSize {
		if closer != nil {
			closer.Close()
		}
		return nil, fmt.Errorf("runtime: tokenizer has %d pieces, model vocabulary %d", tok.VocabSize(), cfg.VocabSize)
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = 64
	}
	e := &Engine{Config: cfg, Tokenizer: tok, w: w, pool: newWorkerPool(opts.Threads), batch: batch, closer: closer, kvF16: opts.KVF16}
	e.needQ8 = w.anyQuantized()
	e.startStepper()
	return e, nil
}

// Threads is the number of worker threads.
func (e *Engine) Threads() int { return e.pool.threads }

// NewSession returns a session whose KV cache holds maxCtx tokens.
func (e *Engine) NewSession(maxCtx int) (*Session, error) {
	if maxCtx <= 0 {
		return nil, fmt.Errorf("runtime: context of %d tokens", maxCtx)
	}
	for {
		cur := e.stepper.maxCtx.Load()
		if int64(maxCtx) <= cur || e.stepper.maxCtx.CompareAndSwap(cur, int64(maxCtx)) {
			break
		}
	}
	return e.newSession(maxCtx, min(e.batch, maxCtx)), nil
}

// StopTokens are the ids that end a reply: EOS and <end_of_turn>.
func (e *Engine) StopTokens() []int { return ChatStopTokens(e.Tokenizer) }

// Close releases the weights; sessions must not be used afterwards.
func (e *Engine) Close() error {
	e.stopStepper()
	e.pool.close()
	if e.closer != nil {
		return e.closer.Close()
	}
	return nil
}
