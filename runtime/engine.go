// Package runtime runs Gemma 2 models on CPUs: weights loading, the forward
// pass with a KV cache, batched prefill, sampling and the generation loop.
package runtime

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cafeq/cafeq/model"
)

// Engine is a loaded model: configuration, weights and a worker pool. One
// Engine serves any number of Sessions, which share its weights.
type Engine struct {
	Config model.Config
	w      *weights
	pool   *workerPool
	needQ8 bool // some matrix reads 8-bit activations
	closer io.Closer
}

// Options tunes loading.
type Options struct {
	Threads int // worker threads; 0: all cores
	Batch   int // most tokens per prefill chunk; 0: 64
}

// Load opens a Hugging Face checkpoint directory.
func Load(path string, opts Options) (*Engine, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("runtime: %s is not a model directory", path)
	}
	ck, err := model.OpenCheckpoint(path)
	if err != nil {
		return nil, err
	}
	w, err := loadWeights(ck.Config, checkpointSource{ck})
	if err != nil {
		ck.Close()
		return nil, fmt.Errorf("%w (in %s)", err, filepath.Base(path))
	}
	return newEngine(ck.Config, w, ck, opts), nil
}

func newEngine(cfg model.Config, w *weights, closer io.Closer, opts Options) *Engine {
	e := &Engine{Config: cfg, w: w, pool: newWorkerPool(opts.Threads), closer: closer}
	e.needQ8 = w.anyQuantized()
	return e
}

// Threads is the number of worker threads.
func (e *Engine) Threads() int { return e.pool.threads }

// NewSession returns a session whose KV cache holds maxCtx tokens.
func (e *Engine) NewSession(maxCtx int) (*Session, error) {
	if maxCtx <= 0 {
		return nil, fmt.Errorf("runtime: context of %d tokens", maxCtx)
	}
	return e.newSession(maxCtx, min(64, maxCtx)), nil
}

// Close releases the weights; sessions must not be used afterwards.
func (e *Engine) Close() error {
	e.pool.close()
	if e.closer != nil {
		return e.closer.Close()
	}
	return nil
}
