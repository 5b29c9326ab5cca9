package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// WriteSynthetic writes a random-weight Hugging Face checkpoint of cfg into
// dir: config.json and a BF16 model.safetensors. Speed does not depend on the
// weight values, so benchmarks at real sizes need no download. Weights are
// uniform with the variance of a 1/sqrt(fan-in) initialisation, so the
// forward pass stays numerically tame. The tokenizer is not written; copy one
// next to it. progress, if set, is called after each tensor.
func WriteSynthetic(dir string, cfg Config, seed uint64, progress func(done, total int)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	cfgJSON, err := cfg.HFJSON()
	if err != nil {
		return err
	}
	shapes := cfg.ExpectedShapes()
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	specs := make([]SafetensorsSpec, len(names))
	for i, n := range names {
		specs[i] = SafetensorsSpec{Name: HFName(n), DType: BF16, Shape: shapes[n]}
	}
	w, err := CreateSafetensors(filepath.Join(dir, "model.safetensors"), specs, map[string]string{"format": "pt", "cafeq": "synthetic"})
	if err != nil {
		return err
	}
	// Generate the next tensors in parallel while writing the current one.
	type result struct{ data []byte }
	results := make([]chan result, len(names))
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i := range names {
		results[i] = make(chan result, 1)
	}
	go func() {
		for i, n := range names {
			sem <- struct{}{}
			wg.Add(1)
			go func(i int, n string) {
				defer wg.Done()
				results[i] <- result{syntheticTensor(n, shapes[n], seed+uint64(i)*0x9e3779b97f4a7c15)}
			}(i, n)
		}
	}()
	for i := range names {
		r := <-results[i]
		<-sem
		if err := w.Write(r.data); err != nil {
			w.Abort()
			wg.Wait()
			return err
		}
		if progress != nil {
			progress(i+1, len(names))
		}
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), cfgJSON, 0o644)
}

// syntheticTensor returns BF16 bytes: norm weights near 0 (Gemma multiplies
// by 1+w), matrices uniform with variance 1/fan-in.
func syntheticTensor(name string, shape []int, seed uint64) []byte {
	n := 1
	for _, d := range shape {
		n *= d
	}
	scale := 0.1 // norms
	if len(shape) == 2 {
		scale = math.Sqrt(3 / float64(shape[1])) // uniform [-a, a] has variance a²/3
	}
	out := make([]byte, 2*n)
	x := seed | 1
	for i := 0; i < n; i++ {
		// xorshift64*: fast, and plenty for benchmark weights.
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		u := float64((x*0x2545f4914f6cdd1d)>>11)/(1<<53)*2 - 1
		binary.LittleEndian.PutUint16(out[2*i:], uint16(math.Float32bits(float32(u*scale))>>16))
	}
	return out
}
